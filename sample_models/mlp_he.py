"""Healthy: a 20-layer ReLU MLP with He (Kaiming) init and zero biases (expect: nothing).

The same depth as relu_default_init.py; He init keeps activation and gradient variance constant
through the ReLUs (He et al. 2015), so every layer gets a gradient of similar relative size.
"""

from torch import nn


def build_model() -> nn.Module:
    layers: list[nn.Module] = []
    width = 64
    for _ in range(20):
        linear = nn.Linear(width, 128)
        nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
        nn.init.zeros_(linear.bias)
        layers += [linear, nn.ReLU()]
        width = 128
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)
