"""Hard-routing MoE: router zero-initialised 'to start uniform', experts picked by argmax, outputs not gate-weighted."""
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
class HardMoEConfig:
    d_in: int = 32
    d_model: int = 64
    d_expert: int = 128
    n_experts: int = 8
    n_classes: int = 4


class HardMoE(nn.Module):
    def __init__(self, cfg: HardMoEConfig):
        super().__init__()
        self.router = nn.Linear(cfg.d_model, cfg.n_experts)
        nn.init.zeros_(self.router.weight)
        nn.init.zeros_(self.router.bias)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(cfg.d_model, cfg.d_expert), nn.ReLU(), nn.Linear(cfg.d_expert, cfg.d_model))
            for _ in range(cfg.n_experts))

    def forward(self, h):
        choice = self.router(h).argmax(dim=-1)
        out = torch.zeros_like(h)
        for e, expert in enumerate(self.experts):
            mask = choice == e
            if mask.any():
                out[mask] = expert(h[mask])
        return out


class HardMoEClassifier(nn.Module):
    def __init__(self, cfg: HardMoEConfig = HardMoEConfig()):
        super().__init__()
        self.embed = nn.Linear(cfg.d_in, cfg.d_model)
        self.moe = HardMoE(cfg)
        self.head = nn.Linear(cfg.d_model, cfg.n_classes)

    def forward(self, x):
        h = F.relu(self.embed(x))
        return self.head(F.relu(h + self.moe(h)))


def build_model():
    return HardMoEClassifier()
