"""Residual MLP regressor, no normalisation; each branch's output layer is zero-initialised (Fixup/ReZero style)."""
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---- task: regress 2 outputs of a fixed random teacher MLP from a 16-d Gaussian vector ----
TASK = "vec-reg"
_g = torch.Generator().manual_seed(4321)
_TW1 = torch.randn(16, 32, generator=_g) * 1.5 / math.sqrt(16)
_TW2 = torch.randn(32, 2, generator=_g) * 1.5 / math.sqrt(32)


def _targets(x):
    return torch.tanh(x @ _TW1) @ _TW2


def example_inputs(batch_size: int):
    return torch.randn(batch_size, 16)


def _pred(output):
    return output["y"] if isinstance(output, dict) else output


def loss_fn(output, inputs):
    return F.mse_loss(_pred(output), _targets(inputs))


def r2(output, inputs):
    y = _targets(inputs)
    return 1.0 - ((_pred(output) - y) ** 2).sum() / ((y - y.mean(0)) ** 2).sum()


score = r2


def chance(inputs):
    return 0.0


# ---- model ----


@dataclass
class ResConfig:
    d_in: int = 16
    width: int = 128
    n_blocks: int = 8
    d_out: int = 2


class ZeroInitBlock(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, h):
        return h + self.fc2(F.relu(self.fc1(h)))


class ZeroInitResNet(nn.Module):
    def __init__(self, cfg: ResConfig = ResConfig()):
        super().__init__()
        self.inp = nn.Linear(cfg.d_in, cfg.width)
        self.blocks = nn.Sequential(*[ZeroInitBlock(cfg.width) for _ in range(cfg.n_blocks)])
        self.out = nn.Linear(cfg.width, cfg.d_out)

    def forward(self, x):
        return {"y": self.out(self.blocks(self.inp(x)))}


def build_model():
    return ZeroInitResNet()
