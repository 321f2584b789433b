"""Digit stream: predict (x[T-1] + x[T-2]) mod 10 at the end of a 120-step stream.

Plain nn.GRU, PyTorch default initialisation.
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class StreamConfig:
    vocab: int = 10
    seq_len: int = 120
    d_embed: int = 32
    d_hidden: int = 96


CFG = StreamConfig()


class StreamGRU(nn.Module):
    def __init__(self, cfg: StreamConfig = CFG):
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab, cfg.d_embed)
        self.rnn = nn.GRU(cfg.d_embed, cfg.d_hidden, batch_first=True)
        self.readout = nn.Sequential(nn.Linear(cfg.d_hidden, cfg.d_hidden), nn.ReLU(),
                                     nn.Linear(cfg.d_hidden, cfg.vocab))

    def forward(self, tokens):
        h, _ = self.rnn(self.embed(tokens))
        return {"logits": self.readout(h[:, -1])}


def build_model():
    return StreamGRU(CFG)


def example_inputs(batch_size: int):
    return {"tokens": torch.randint(0, CFG.vocab, (batch_size, CFG.seq_len))}


def make_targets(inputs):
    t = inputs["tokens"]
    return (t[:, -1] + t[:, -2]) % CFG.vocab


def loss_fn(output, inputs):
    return F.cross_entropy(output["logits"], make_targets(inputs))
