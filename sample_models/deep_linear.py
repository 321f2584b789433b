"""Pathological: a 60-layer linear network (no activation at all) with every weight orthogonal
at gain 0.8 (expect: vanishing error); ``DeepLinear(gain=1.3)`` explodes instead.

A deep linear network multiplies the signal and the gradient by the product of its weight
matrices: at gain ``g`` every orthogonal layer scales both by exactly ``g``, so 60 layers give
``0.8**60 = 1.5e-6`` or ``1.3**60 = 6.9e6``. With no activation to swap, the cure is the
initialisation itself: orthogonal at gain 1, the identity's gain, is dynamically isometric
(Saxe et al. 2014).
"""

import torch
from torch import nn


class DeepLinear(nn.Module):
    def __init__(
        self, depth: int = 60, width: int = 64, in_dim: int = 32, n_out: int = 10, gain: float = 0.8
    ) -> None:
        super().__init__()
        dims = [in_dim] + [width] * (depth - 1) + [n_out]
        self.layers = nn.Sequential(
            *(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        )
        for layer in self.layers:
            nn.init.orthogonal_(layer.weight, gain=gain)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def build_model() -> nn.Module:
    return DeepLinear()


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 32)
