"""12-layer highway network; transform gates start mostly closed (gate bias -3, Srivastava et al.)."""
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
class HighwayConfig:
    d_in: int = 32
    width: int = 64
    depth: int = 12
    n_classes: int = 4
    gate_bias: float = -3.0


class HighwayLayer(nn.Module):
    def __init__(self, width: int, gate_bias: float):
        super().__init__()
        self.transform = nn.Linear(width, width)
        self.gate = nn.Linear(width, width)
        nn.init.constant_(self.gate.bias, gate_bias)

    def forward(self, h):
        t = torch.sigmoid(self.gate(h))
        return t * F.relu(self.transform(h)) + (1.0 - t) * h


class HighwayNet(nn.Module):
    def __init__(self, cfg: HighwayConfig = HighwayConfig()):
        super().__init__()
        self.inp = nn.Linear(cfg.d_in, cfg.width)
        self.layers = nn.Sequential(*[HighwayLayer(cfg.width, cfg.gate_bias) for _ in range(cfg.depth)])
        self.out = nn.Linear(cfg.width, cfg.n_classes)

    def forward(self, x):
        return self.out(self.layers(F.relu(self.inp(x))))


def build_model():
    return HighwayNet()
