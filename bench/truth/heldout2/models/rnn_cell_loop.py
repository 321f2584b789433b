"""Hand-written Elman RNN (tanh) unrolled in a Python loop.

Task: at the last step, report which of 6 symbols was shown 10 steps before the end.
W_hh is initialised orthogonal (gain 1), W_ih with Xavier.
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class CellConfig:
    n_symbols: int = 6
    seq_len: int = 40
    lag: int = 10
    d_hidden: int = 64


CFG = CellConfig()


class ElmanCell(nn.Module):
    def __init__(self, d_in: int, d_hidden: int):
        super().__init__()
        self.w_ih = nn.Linear(d_in, d_hidden)
        self.w_hh = nn.Linear(d_hidden, d_hidden, bias=False)
        nn.init.xavier_uniform_(self.w_ih.weight)
        nn.init.zeros_(self.w_ih.bias)
        nn.init.orthogonal_(self.w_hh.weight)

    def forward(self, x_t, h):
        return torch.tanh(self.w_ih(x_t) + self.w_hh(h))


class LoopRNN(nn.Module):
    def __init__(self, cfg: CellConfig = CFG):
        super().__init__()
        self.cfg = cfg
        self.cell = ElmanCell(cfg.n_symbols, cfg.d_hidden)
        self.out = nn.Linear(cfg.d_hidden, cfg.n_symbols)

    def forward(self, x):
        # x: (batch, time, n_symbols) one-hot
        h = x.new_zeros(x.shape[0], self.cfg.d_hidden)
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
        return self.out(h)


def build_model():
    return LoopRNN(CFG)


def example_inputs(batch_size: int):
    sym = torch.randint(0, CFG.n_symbols, (batch_size, CFG.seq_len))
    return F.one_hot(sym, CFG.n_symbols).float()


def make_targets(inputs):
    return inputs[:, -CFG.lag].argmax(-1)


def loss_fn(output, inputs):
    return F.cross_entropy(output, make_targets(inputs))
