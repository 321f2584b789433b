"""Wide ReLU MLP whose hidden biases start at -2 'for sparse activations'."""
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---- task: classify a 32-d Gaussian vector by a fixed random teacher MLP (4 classes) ----
TASK = "vec-cls"
_g = torch.Generator().manual_seed(1234)
_TW1 = torch.randn(32, 64, generator=_g) * 2.0 / math.sqrt(32)
_TB1 = torch.randn(64, generator=_g) * 0.5
_TW2 = torch.randn(64, 4, generator=_g) * 2.0 / math.sqrt(64)


def _labels(x):
    return (torch.tanh(x @ _TW1 + _TB1) @ _TW2).argmax(dim=1)


def example_inputs(batch_size: int):
    return torch.randn(batch_size, 32)


def _logits(output):
    return output["logits"] if isinstance(output, dict) else output


def loss_fn(output, inputs):
    return F.cross_entropy(_logits(output), _labels(inputs))


def accuracy(output, inputs):
    return (_logits(output).argmax(dim=1) == _labels(inputs)).float().mean()


score = accuracy


def chance(inputs):
    return torch.bincount(_labels(inputs), minlength=4).max().item() / inputs.shape[0]


# ---- model ----


@dataclass
class SparseMLPConfig:
    d_in: int = 32
    hidden: int = 256
    n_classes: int = 4
    bias_init: float = -2.0


class SparseMLP(nn.Module):
    def __init__(self, cfg: SparseMLPConfig = SparseMLPConfig()):
        super().__init__()
        self.fc1 = nn.Linear(cfg.d_in, cfg.hidden)
        self.fc2 = nn.Linear(cfg.hidden, cfg.hidden)
        self.out = nn.Linear(cfg.hidden, cfg.n_classes)
        for fc in (self.fc1, self.fc2):
            nn.init.constant_(fc.bias, cfg.bias_init)

    def forward(self, x):
        return self.out(F.relu(self.fc2(F.relu(self.fc1(x)))))


def build_model():
    return SparseMLP()
