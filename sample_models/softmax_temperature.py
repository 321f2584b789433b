"""Pathological: attention pooling whose softmax runs at temperature 1e-3 (expect: saturation
error).

Scores divided by 1e-3 put nearly all the probability on one position per row: the softmax's
derivative p_i (1 - p_i) is then about zero everywhere, and the query/key layers get (almost)
no gradient. The same model at temperature sqrt(dim) (``build_healthy``) is fine.
"""

import math

import torch
from torch import nn


class AttentionPool(nn.Module):
    def __init__(self, dim: int = 32, n_classes: int = 4, temperature: float = 1e-3) -> None:
        super().__init__()
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.softmax = nn.Softmax(dim=-1)
        self.temperature = temperature
        self.head = nn.Linear(dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.query(x.mean(dim=1, keepdim=True)) @ self.key(x).transpose(1, 2)
        weights = self.softmax(scores / self.temperature)
        return self.head((weights @ self.value(x)).squeeze(1))


def build_model() -> nn.Module:
    return AttentionPool()


def build_healthy() -> nn.Module:
    return AttentionPool(temperature=math.sqrt(32))


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 20, 32)
