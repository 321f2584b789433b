"""4-hidden-layer ReLU classifier with biases initialised at -1 to encourage sparse activations."""
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class SparseConfig:
    d_in: int = 16
    width: int = 128
    n_layers: int = 4
    n_classes: int = 5
    bias_init: float = -1.0


CFG = SparseConfig()


class SparseMLP(nn.Module):
    def __init__(self, cfg: SparseConfig = CFG):
        super().__init__()
        layers, d = [], cfg.d_in
        for _ in range(cfg.n_layers):
            lin = nn.Linear(d, cfg.width)
            nn.init.constant_(lin.bias, cfg.bias_init)
            layers += [lin, nn.ReLU()]
            d = cfg.width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(d, cfg.n_classes)

    def forward(self, x):
        return self.classifier(self.features(x))


@lru_cache(maxsize=1)
def _teacher():
    g = torch.Generator().manual_seed(3)
    return torch.randn(16, 48, generator=g) / 4.0, torch.randn(48, 5, generator=g)


def make_targets(x):
    w1, w2 = _teacher()
    return (torch.tanh(x @ w1) @ w2).argmax(-1)


def build_model():
    return SparseMLP(CFG)


def example_inputs(batch_size: int):
    return torch.randn(batch_size, CFG.d_in)


def loss_fn(output, inputs):
    return F.cross_entropy(output, make_targets(inputs))
