"""SIREN (Sitzmann et al., 2020) fitting a 2-D signal from coordinates.

Published init: first layer U(-1/n, 1/n), hidden layers U(-sqrt(6/n)/w0, sqrt(6/n)/w0),
and every sine layer computes sin(w0 * (W x + b)) with w0 = 30.
"""
import math
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class SirenConfig:
    in_features: int = 2
    hidden: int = 64
    n_hidden_layers: int = 3
    out_features: int = 1
    w0: float = 30.0
    w0_initial: float = 30.0


CFG = SirenConfig()


class SineLayer(nn.Module):
    def __init__(self, n_in, n_out, w0=30.0, is_first=False):
        super().__init__()
        self.w0 = w0
        self.is_first = is_first
        self.linear = nn.Linear(n_in, n_out)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self):
        n = self.linear.in_features
        bound = 1.0 / n if self.is_first else math.sqrt(6.0 / n) / self.w0
        self.linear.weight.uniform_(-bound, bound)

    def forward(self, x):
        return torch.sin(self.w0 * self.linear(x))


class Siren(nn.Module):
    def __init__(self, cfg: SirenConfig = CFG):
        super().__init__()
        layers = [SineLayer(cfg.in_features, cfg.hidden, cfg.w0_initial, is_first=True)]
        layers += [SineLayer(cfg.hidden, cfg.hidden, cfg.w0) for _ in range(cfg.n_hidden_layers)]
        self.net = nn.Sequential(*layers)
        self.final = nn.Linear(cfg.hidden, cfg.out_features)
        with torch.no_grad():
            bound = math.sqrt(6.0 / cfg.hidden) / cfg.w0
            self.final.weight.uniform_(-bound, bound)

    def forward(self, coords):
        return self.final(self.net(coords))


def build_model():
    return Siren(CFG)


def example_inputs(batch_size: int):
    return torch.rand(batch_size, 2) * 2 - 1      # coordinates in [-1, 1]^2


def image(coords):
    """The signal to fit: a sum of a few sinusoids and a Gaussian bump."""
    x, y = coords[:, 0], coords[:, 1]
    z = (torch.sin(4 * x) * torch.cos(3 * y) + 0.5 * torch.sin(9 * (x + y))
         + torch.exp(-8 * ((x - 0.3) ** 2 + (y + 0.2) ** 2)))
    return z.unsqueeze(-1)


def make_targets(inputs):
    return image(inputs)


def loss_fn(output, inputs):
    return F.mse_loss(output, make_targets(inputs))
