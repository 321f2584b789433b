"""24-block pre-LayerNorm residual MLP classifier (deep, but normalised and residual)."""
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
class ResMLPConfig:
    d_in: int = 32
    width: int = 128
    depth: int = 24
    n_classes: int = 4
    expansion: int = 2


class PreNormBlock(nn.Module):
    def __init__(self, cfg: ResMLPConfig):
        super().__init__()
        self.norm = nn.LayerNorm(cfg.width)
        self.fc1 = nn.Linear(cfg.width, cfg.width * cfg.expansion)
        self.fc2 = nn.Linear(cfg.width * cfg.expansion, cfg.width)

    def forward(self, h):
        return h + self.fc2(F.gelu(self.fc1(self.norm(h))))


class ResMLP(nn.Module):
    def __init__(self, cfg: ResMLPConfig = ResMLPConfig()):
        super().__init__()
        self.stem = nn.Linear(cfg.d_in, cfg.width)
        self.blocks = nn.ModuleList(PreNormBlock(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.width)
        self.head = nn.Linear(cfg.width, cfg.n_classes)

    def forward(self, x):
        h = self.stem(x)
        for blk in self.blocks:
            h = blk(h)
        return {"logits": self.head(self.norm(h))}


def build_model():
    return ResMLP(ResMLPConfig())
