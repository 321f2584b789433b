"""Pathological: a discrete bottleneck sampled with Gumbel-softmax at temperature 0.01 (expect:
does not train).

The encoder scores 16 codes, ``F.gumbel_softmax(logits, tau=0.01)`` draws a relaxed one-hot
sample, and the decoder reads it. The relaxation's Jacobian is (diag(y) - y y^T) / tau: at
tau = 0.01 the sample is one-hot to float precision almost always, so the encoder's gradient is
zero in most examples and of size 1/tau in the few where two codes tie (Jang et al. 2017 anneal
tau from 1 and keep it above about 0.5 early in training; Maddison et al. 2017). The same model at
tau = 1 (``build_warm``) trains.

The task: which of 4 quadrants the first two inputs fall in (targets computed from the inputs).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class CodeBottleneck(nn.Module):
    def __init__(self, tau: float = 0.01, codes: int = 16) -> None:
        super().__init__()
        self.tau = tau
        self.encoder = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, codes))
        self.decoder = nn.Sequential(nn.Linear(codes, 64), nn.ReLU(), nn.Linear(64, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        code = F.gumbel_softmax(self.encoder(x), tau=self.tau)
        return self.decoder(code)


def build_model() -> nn.Module:
    return CodeBottleneck(0.01)


def build_warm() -> nn.Module:
    return CodeBottleneck(1.0)


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 16)


def loss_fn(output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(output, (x[:, 0] > 0).long() * 2 + (x[:, 1] > 0).long())
