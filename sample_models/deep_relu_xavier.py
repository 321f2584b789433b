"""Pathological: a 50-layer ReLU MLP, Xavier init, no biases (expect: vanishing).

Xavier init assumes a linear activation; a ReLU halves the variance, so the forward signal
collapses by 2**-25 over 50 layers and every layer's gradient is tiny relative to its weights,
although the first/last gradient ratio looks fine (He et al. 2015, Fig. 3).
"""

from torch import nn


def build_model() -> nn.Module:
    layers: list[nn.Module] = []
    width = 64
    for _ in range(50):
        linear = nn.Linear(width, 128, bias=False)
        nn.init.xavier_normal_(linear.weight)
        layers += [linear, nn.ReLU()]
        width = 128
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)
