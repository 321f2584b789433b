"""GRUCell language-style reader trained with truncated BPTT (detach every 20 steps).

Task: a signal token (1..8) appears once in the first tenth of a length-100 sequence of
noise tokens (9..15); predict it at the end.  Dependency 90-99 steps > k = 20.
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Config:
    vocab: int = 16
    n_classes: int = 8
    d_embed: int = 32
    hidden: int = 64
    seq_len: int = 100
    tbptt_k: int = 20


CFG = Config()


class TBPTTGRU(nn.Module):
    def __init__(self, cfg: Config = CFG):
        super().__init__()
        self.cfg = cfg
        self.emb = nn.Embedding(cfg.vocab, cfg.d_embed)
        self.cell = nn.GRUCell(cfg.d_embed, cfg.hidden)
        self.head = nn.Linear(cfg.hidden, cfg.n_classes)

    def forward(self, tokens):
        x = self.emb(tokens)
        B, T, _ = x.shape
        h = x.new_zeros(B, self.cfg.hidden)
        for t in range(T):
            if t > 0 and t % self.cfg.tbptt_k == 0:
                h = h.detach()  # truncate the graph every k steps
            h = self.cell(x[:, t], h)
        return self.head(h)


def build_model():
    return TBPTTGRU(CFG)


def example_inputs(batch_size):
    T = CFG.seq_len
    x = torch.randint(9, 16, (batch_size, T))
    pos = torch.randint(0, T // 10, (batch_size,))
    sig = torch.randint(1, 9, (batch_size,))
    x[torch.arange(batch_size), pos] = sig
    return x


def _targets(x):
    m = (x >= 1) & (x <= 8)
    return (x * m).sum(1) - 1


def loss_fn(output, inputs):
    return F.cross_entropy(output, _targets(inputs))


def accuracy(output, inputs):
    return (output.argmax(-1) == _targets(inputs)).float().mean().item()
