"""Pathological: a log of a signed activation turns the forward pass NaN (expect: nonfinite).

``LogFeatures`` takes ``torch.log`` of a Linear output, which is negative for half the values.
gradcheck names ``log_features`` as the first module with NaN.
"""

import torch
from torch import nn


class LogFeatures(nn.Module):
    """A buggy feature transform: log of values that can be negative."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(self.proj(x))


class NanNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(32, 64)
        self.act = nn.ReLU()
        self.log_features = LogFeatures(64)
        self.head = nn.Linear(64, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.log_features(self.act(self.encoder(x))))


def build_model() -> nn.Module:
    return NanNet()


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 32)
