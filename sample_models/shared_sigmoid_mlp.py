"""Pathological: a 30-layer sigmoid MLP that reuses one ``nn.Sigmoid()`` after every layer
(expect: vanishing error).

``self.act = nn.Sigmoid()`` called 29 times is the common way to write it. A remedy that swaps
the activation must follow every call site of that one module: each of the 29 layers that feed
it needs He init, not only the first.
"""

import torch
from torch import nn


class DeepMLP(nn.Module):
    def __init__(self, in_dim: int = 32, width: int = 64, depth: int = 30, n_out: int = 10):
        super().__init__()
        dims = [in_dim] + [width] * (depth - 1)
        self.layers = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True)
        )
        self.out = nn.Linear(width, n_out)
        self.act = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = self.act(layer(x))
        return self.out(x)


def build_model() -> nn.Module:
    return DeepMLP()


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 32)
