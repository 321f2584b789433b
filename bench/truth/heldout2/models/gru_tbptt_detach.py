"""GRUCell unrolled by hand; hidden state is detached between steps to keep memory flat
("truncated BPTT").

Task: at the last of 20 steps, output the symbol seen 5 steps before the end.
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Config:
    n_symbols: int = 8
    seq_len: int = 20
    lag: int = 5
    d_embed: int = 16
    d_hidden: int = 64


CFG = Config()


class StepwiseGRU(nn.Module):
    def __init__(self, cfg: Config = CFG):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.n_symbols, cfg.d_embed)
        self.cell = nn.GRUCell(cfg.d_embed, cfg.d_hidden)
        self.head = nn.Linear(cfg.d_hidden, cfg.n_symbols)

    def forward(self, tokens):
        x = self.embed(tokens)
        h = x.new_zeros(x.shape[0], self.cfg.d_hidden)
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h.detach())
        return {"logits": self.head(h)}


def build_model():
    return StepwiseGRU(CFG)


def example_inputs(batch_size: int):
    return {"tokens": torch.randint(0, CFG.n_symbols, (batch_size, CFG.seq_len))}


def make_targets(inputs):
    return inputs["tokens"][:, -CFG.lag]


def loss_fn(output, inputs):
    return F.cross_entropy(output["logits"], make_targets(inputs))
