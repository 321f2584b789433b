"""Normalisation-free residual MLP with Fixup-style initialisation (Zhang et al., 2019).

Each residual branch's last Linear is zero-initialised, scalar biases/multiplier per branch,
and the final classifier layer is zero-initialised too, as in the paper.
"""
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class FixupConfig:
    d_in: int = 16
    width: int = 64
    n_blocks: int = 8
    n_classes: int = 5


CFG = FixupConfig()


class FixupBlock(nn.Module):
    def __init__(self, width: int, n_blocks: int):
        super().__init__()
        self.bias1a = nn.Parameter(torch.zeros(1))
        self.fc1 = nn.Linear(width, width, bias=False)
        self.bias1b = nn.Parameter(torch.zeros(1))
        self.bias2a = nn.Parameter(torch.zeros(1))
        self.fc2 = nn.Linear(width, width, bias=False)
        self.scale = nn.Parameter(torch.ones(1))
        self.bias2b = nn.Parameter(torch.zeros(1))
        # Fixup: rescale the first layer by L^{-1/(2m-2)} (m = 2 layers per branch), zero the last
        nn.init.kaiming_normal_(self.fc1.weight, nonlinearity="relu")
        with torch.no_grad():
            self.fc1.weight.mul_(n_blocks ** -0.5)
        nn.init.zeros_(self.fc2.weight)

    def forward(self, x):
        out = F.relu(self.fc1(x + self.bias1a) + self.bias1b)
        out = self.fc2(out + self.bias2a) * self.scale + self.bias2b
        return F.relu(x + out)


class FixupResMLP(nn.Module):
    def __init__(self, cfg: FixupConfig = CFG):
        super().__init__()
        self.stem = nn.Linear(cfg.d_in, cfg.width)
        self.blocks = nn.Sequential(*[FixupBlock(cfg.width, cfg.n_blocks) for _ in range(cfg.n_blocks)])
        self.classifier = nn.Linear(cfg.width, cfg.n_classes)
        nn.init.zeros_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, features):
        return {"logits": self.classifier(self.blocks(F.relu(self.stem(features))))}


@lru_cache(maxsize=1)
def _teacher():
    g = torch.Generator().manual_seed(7)
    return torch.randn(16, 48, generator=g) / 4.0, torch.randn(48, 5, generator=g)


def make_targets(inputs):
    w1, w2 = _teacher()
    return (torch.tanh(inputs["features"] @ w1) @ w2).argmax(-1)


def build_model():
    return FixupResMLP(CFG)


def example_inputs(batch_size: int):
    return {"features": torch.randn(batch_size, CFG.d_in)}


def loss_fn(output, inputs):
    return F.cross_entropy(output["logits"], make_targets(inputs))
