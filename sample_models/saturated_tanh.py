"""Pathological: a tanh MLP with weights of standard deviation 1 (expect: saturation).

With 128 inputs per unit, pre-activations have a standard deviation near 11, so most tanh outputs
sit at +-1 where the derivative is nearly zero (Glorot & Bengio 2010; LeCun et al. 1998).
"""

from torch import nn


def build_model() -> nn.Module:
    layers: list[nn.Module] = []
    width = 64
    for _ in range(8):
        linear = nn.Linear(width, 128)
        nn.init.normal_(linear.weight, std=1.0)
        nn.init.zeros_(linear.bias)
        layers += [linear, nn.Tanh()]
        width = 128
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)
