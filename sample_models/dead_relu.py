"""Pathological: ReLU layers with a bias of -3 (expect: dead-units, no-gradient).

He init gives pre-activations of unit scale; a bias of -3 puts almost every unit below zero for
every input, so they output zero and pass no gradient.
"""

from torch import nn


def build_model() -> nn.Module:
    layers: list[nn.Module] = []
    width = 64
    for _ in range(6):
        linear = nn.Linear(width, 128)
        nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
        nn.init.constant_(linear.bias, -3.0)
        layers += [linear, nn.ReLU()]
        width = 128
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)
