"""Healthy: an MLP whose classifier head starts at exactly zero (expect: no-gradient at info only).

A zero head is a common, deliberate init: the body gets no gradient before the first update,
after which the head's weights are non-zero and gradient flows.
"""

from torch import nn


def build_model() -> nn.Module:
    head = nn.Linear(64, 10)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), head)
