"""Healthy: SIREN (Sitzmann et al. 2020) with its published initialisation (expect: healthy).

Hidden weights are drawn from U(+-sqrt(6 / fan_in) / w0) and forward multiplies each layer's
pre-activation by w0 = 30 before the sine, so the weights sit far below 1/sqrt(fan_in) while
the signal and the gradient keep their scale: the small weights are compensated in forward.
It fits a coordinate-to-signal regression (``loss_fn``) with Adam and with SGD; the same
network with w0 = 1 and the same small weights does not (``build_uncompensated``), nor does it
with w0 = 30 and PyTorch's default init (``build_default_init``).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


class SineLayer(nn.Module):
    def __init__(self, fan_in: int, fan_out: int, w0: float, first: bool = False) -> None:
        super().__init__()
        self.w0 = w0
        self.linear = nn.Linear(fan_in, fan_out)
        bound = 1 / fan_in if first else math.sqrt(6 / fan_in) / w0
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.w0 * self.linear(x))


class Siren(nn.Module):
    def __init__(self, hidden: int = 128, depth: int = 5, w0: float = 30.0) -> None:
        super().__init__()
        layers = [SineLayer(2, hidden, w0, first=True)]
        layers += [SineLayer(hidden, hidden, w0) for _ in range(depth - 1)]
        self.net = nn.Sequential(*layers)
        self.out = nn.Linear(hidden, 1)
        bound = math.sqrt(6 / hidden) / w0
        with torch.no_grad():
            self.out.weight.uniform_(-bound, bound)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(coords)).squeeze(-1)


class Uncompensated(Siren):
    """The same small weights without the w0 multiplier in forward."""

    def __init__(self) -> None:
        super().__init__()
        for layer in self.net:
            layer.w0 = 1.0


class DefaultInit(Siren):
    """The same network, w0 = 30 in forward, with PyTorch's default nn.Linear init
    (U(+-1/sqrt(fan_in))): every pre-activation is 30 times too large, so each sine's output is
    noise in its input."""

    def __init__(self) -> None:
        super().__init__()
        for layer in [*(s.linear for s in self.net), self.out]:
            layer.reset_parameters()


def build_model() -> nn.Module:
    return Siren()


def build_default_init() -> nn.Module:
    return DefaultInit()


def build_uncompensated() -> nn.Module:
    return Uncompensated()


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.rand(batch_size, 2) * 2 - 1


def target(coords: torch.Tensor) -> torch.Tensor:
    """A fixed signal with fine detail over [-1, 1]^2."""
    x, y = coords[:, 0], coords[:, 1]
    return torch.sin(8 * x) * torch.cos(6 * y) + 0.5 * torch.sin(20 * x * y)


def loss_fn(prediction: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(prediction, target(coords))
