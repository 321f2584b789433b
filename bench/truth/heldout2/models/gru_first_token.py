"""Sequence classification: the class is the token at position 2 of a 120-step sequence.

All other positions are random tokens from the same vocabulary. Default-init nn.GRU.
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Config:
    vocab: int = 8
    seq_len: int = 120
    key_pos: int = 2
    d_embed: int = 32
    d_hidden: int = 96


CFG = Config()


class GRUClassifier(nn.Module):
    def __init__(self, cfg: Config = CFG):
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab, cfg.d_embed)
        self.encoder = nn.GRU(cfg.d_embed, cfg.d_hidden, batch_first=True)
        self.classifier = nn.Linear(cfg.d_hidden, cfg.vocab)

    def forward(self, tokens):
        _, h_n = self.encoder(self.embed(tokens))
        return {"logits": self.classifier(h_n[-1])}


def build_model():
    return GRUClassifier(CFG)


def example_inputs(batch_size: int):
    return {"tokens": torch.randint(0, CFG.vocab, (batch_size, CFG.seq_len))}


def make_targets(inputs):
    return inputs["tokens"][:, CFG.key_pos]


def loss_fn(output, inputs):
    return F.cross_entropy(output["logits"], make_targets(inputs))
