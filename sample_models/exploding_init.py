"""Pathological: a 20-layer ReLU MLP initialised at twice He's standard deviation (expect: exploding).

Each layer multiplies activations and gradients by about 2, so both grow by 2**20.
"""

from torch import nn


def build_model() -> nn.Module:
    layers: list[nn.Module] = []
    width = 64
    for _ in range(20):
        linear = nn.Linear(width, 128)
        nn.init.normal_(linear.weight, std=2 * (2 / width) ** 0.5)
        nn.init.zeros_(linear.bias)
        layers += [linear, nn.ReLU()]
        width = 128
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)
