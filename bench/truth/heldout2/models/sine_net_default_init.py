"""Sine-activation MLP for coordinate regression (w0 = 30 in every layer).

Uses PyTorch's default nn.Linear initialisation.
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class NetConfig:
    hidden: int = 64
    depth: int = 4
    w0: float = 30.0


CFG = NetConfig()


class Sine(nn.Module):
    def __init__(self, w0: float):
        super().__init__()
        self.w0 = w0

    def forward(self, x):
        return torch.sin(self.w0 * x)


class SineMLP(nn.Module):
    def __init__(self, cfg: NetConfig = CFG):
        super().__init__()
        layers, d = [], 2
        for _ in range(cfg.depth):
            layers += [nn.Linear(d, cfg.hidden), Sine(cfg.w0)]
            d = cfg.hidden
        layers.append(nn.Linear(d, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, coords):
        return self.mlp(coords)


def build_model():
    return SineMLP(CFG)


def example_inputs(batch_size: int):
    return torch.rand(batch_size, 2) * 2 - 1


def make_targets(coords):
    x, y = coords[:, 0], coords[:, 1]
    z = (torch.sin(4 * x) * torch.cos(3 * y) + 0.5 * torch.sin(9 * (x + y))
         + torch.exp(-8 * ((x - 0.3) ** 2 + (y + 0.2) ** 2)))
    return z.unsqueeze(-1)


def loss_fn(output, inputs):
    return F.mse_loss(output, make_targets(inputs))
