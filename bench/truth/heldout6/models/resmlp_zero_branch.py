"""Residual MLP whose branches end in a zero-initialised Linear (each block starts as the
identity, as in Fixup / 'zero-init residual' recipes)."""
from dataclasses import dataclass
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---- task: 4-way classification of 32-d vectors by a fixed random teacher ----
_TG = torch.Generator().manual_seed(1001)
_TW1 = torch.randn(32, 64, generator=_TG) / 32 ** 0.5
_TW2 = torch.randn(64, 4, generator=_TG) / 64 ** 0.5
TASK_KIND = "classification"


def example_inputs(batch_size: int):
    return torch.randn(batch_size, 32)


def targets(inputs):
    return (torch.tanh(2.0 * inputs @ _TW1) @ _TW2).argmax(-1)


# ---- model ----


@dataclass
class ResMLPConfig:
    d_in: int = 32
    width: int = 64
    depth: int = 6
    n_classes: int = 4


class ResBlock(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, 2 * width)
        self.fc2 = nn.Linear(2 * width, width)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x):
        return x + self.fc2(F.gelu(self.fc1(self.norm(x))))


class ResMLP(nn.Module):
    def __init__(self, cfg: ResMLPConfig = ResMLPConfig()):
        super().__init__()
        self.stem = nn.Linear(cfg.d_in, cfg.width)
        self.blocks = nn.Sequential(*[ResBlock(cfg.width) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(cfg.width)
        self.head = nn.Linear(cfg.width, cfg.n_classes)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x):
        return {"logits": self.head(self.norm(self.blocks(self.stem(x))))}


def build_model():
    return ResMLP(ResMLPConfig())


def predict(output):
    return output["logits"]


def loss_fn(output, inputs):
    return F.cross_entropy(output["logits"], targets(inputs))
