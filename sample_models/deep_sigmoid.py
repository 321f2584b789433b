"""Pathological: a 10-layer sigmoid MLP with PyTorch's default init (expect: vanishing).

Each sigmoid passes at most a quarter of the gradient and the default init shrinks it further,
so the first layers get a gradient about 1e-8 times that of the last (Glorot & Bengio 2010).
"""

from torch import nn


def build_model() -> nn.Module:
    layers: list[nn.Module] = []
    width = 64
    for _ in range(10):
        layers += [nn.Linear(width, 128), nn.Sigmoid()]
        width = 128
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)
