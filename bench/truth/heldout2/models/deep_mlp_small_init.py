"""24-layer ReLU MLP regressor on a teacher-generated target.

Weights are scaled down by 0.01 after construction ("start close to zero so training is stable").
"""
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class MLPConfig:
    d_in: int = 16
    width: int = 64
    depth: int = 24
    weight_scale: float = 0.01


CFG = MLPConfig()


class DeepMLP(nn.Module):
    def __init__(self, cfg: MLPConfig = CFG):
        super().__init__()
        dims = [cfg.d_in] + [cfg.width] * (cfg.depth - 1)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.out = nn.Linear(cfg.width, 1)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("weight"):
                    p.mul_(cfg.weight_scale)

    def forward(self, x):
        for layer in self.hidden:
            x = F.relu(layer(x))
        return self.out(x)


@lru_cache(maxsize=1)
def _teacher():
    g = torch.Generator().manual_seed(1234)
    w1 = torch.randn(16, 32, generator=g) / 4.0
    w2 = torch.randn(32, 1, generator=g) / 32 ** 0.5
    return w1, w2


def make_targets(x):
    w1, w2 = _teacher()
    return torch.tanh(x @ w1) @ w2 * 2.0


def build_model():
    return DeepMLP(CFG)


def example_inputs(batch_size: int):
    return torch.randn(batch_size, CFG.d_in)


def loss_fn(output, inputs):
    return F.mse_loss(output, make_targets(inputs))
