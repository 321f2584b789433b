"""Pathological: a 20-layer ReLU MLP with PyTorch's default Linear init (expect: vanishing).

Swapping sigmoid for ReLU is not enough: PyTorch's default init (kaiming_uniform_ with a=sqrt(5),
variance 1/(3 fan_in)) loses a factor of about 6 of gradient energy per ReLU layer. It needs He
init (He et al. 2015); compare mlp_he.py.
"""

from torch import nn


def build_model() -> nn.Module:
    layers: list[nn.Module] = []
    width = 64
    for _ in range(20):
        layers += [nn.Linear(width, 128), nn.ReLU()]
        width = 128
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)
