"""Residual MLP with ReZero gates (Bachlechner et al. 2020): x + alpha * f(x), alpha starts at 0."""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ReZeroConfig:
    in_dim: int = 16
    width: int = 64
    depth: int = 6
    out_dim: int = 4
    alpha_init: float = 0.0


class ReZeroBlock(nn.Module):
    def __init__(self, width: int, alpha_init: float):
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        self.alpha = nn.Parameter(torch.tensor(alpha_init))

    def forward(self, x):
        return x + self.alpha * self.fc2(F.gelu(self.fc1(x)))


class ReZeroMLP(nn.Module):
    def __init__(self, cfg: ReZeroConfig = ReZeroConfig()):
        super().__init__()
        self.cfg = cfg
        self.stem = nn.Linear(cfg.in_dim, cfg.width)
        self.blocks = nn.ModuleList(
            [ReZeroBlock(cfg.width, cfg.alpha_init) for _ in range(cfg.depth)]
        )
        self.out = nn.Linear(cfg.width, cfg.out_dim)

    def forward(self, x):
        h = self.stem(x)
        for blk in self.blocks:
            h = blk(h)
        return self.out(h)


_g = torch.Generator().manual_seed(1212)
_W1 = torch.randn(16, 32, generator=_g) / 4.0
_W2 = torch.randn(32, 32, generator=_g) / 32**0.5
_W3 = torch.randn(32, 4, generator=_g) / 32**0.5


def target_fn(x):
    h = torch.tanh(x @ _W1.to(x.device))
    h = torch.tanh(2.0 * h @ _W2.to(x.device))
    return h @ _W3.to(x.device) * 2.0


def build_model():
    return ReZeroMLP(ReZeroConfig())


def example_inputs(batch_size: int):
    return torch.randn(batch_size, 16)


def loss_fn(output, inputs):
    return F.mse_loss(output, target_fn(inputs))
