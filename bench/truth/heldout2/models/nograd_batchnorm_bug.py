"""Tabular regressor: a linear bottleneck 'stem', hand-rolled batch standardisation, MLP body.

The statistics are computed without gradient "since they are just constants".
"""
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class TabConfig:
    d_in: int = 32
    d_stem: int = 6
    width: int = 128
    eps: float = 1e-5


CFG = TabConfig()


class StandardizedRegressor(nn.Module):
    def __init__(self, cfg: TabConfig = CFG):
        super().__init__()
        self.cfg = cfg
        self.stem = nn.Linear(cfg.d_in, cfg.d_stem)
        self.body = nn.Sequential(nn.Linear(cfg.d_stem, cfg.width), nn.ReLU(),
                                  nn.Linear(cfg.width, cfg.width), nn.ReLU())
        self.head = nn.Linear(cfg.width, 1)

    def forward(self, x):
        h = self.stem(x)
        with torch.no_grad():
            # batch statistics are constants w.r.t. the loss
            mu = h.mean(dim=0, keepdim=True)
            sd = h.std(dim=0, keepdim=True)
            h = (h - mu) / (sd + self.cfg.eps)
        return self.head(self.body(h))


@lru_cache(maxsize=1)
def _teacher():
    g = torch.Generator().manual_seed(2024)
    u = torch.randn(CFG.d_in, 3, generator=g) / CFG.d_in ** 0.5
    return u


def make_targets(x):
    u = _teacher()
    z = x @ u                                     # a 3-d projection the stem must find
    return (torch.sin(2 * z[:, :1]) + z[:, 1:2] * z[:, 2:3]).detach()


def build_model():
    return StandardizedRegressor(CFG)


def example_inputs(batch_size: int):
    return torch.randn(batch_size, CFG.d_in)


def loss_fn(output, inputs):
    return F.mse_loss(output, make_targets(inputs))
