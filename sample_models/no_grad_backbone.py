"""Pathological: a backbone called under ``torch.no_grad()`` while its parameters are meant to
train (expect: no-gradient error, a cut graph at ``torch.no_grad()``).

A fine-tuning script that froze the backbone "for speed" in forward instead of freezing it
with ``requires_grad_(False)`` and then forgot: the backbone's parameters stay trainable, the
optimizer holds state for them, and they never change. ``bench/cut_truth.py`` trains it.
"""

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Config:
    features: int = 32
    width: int = 128
    depth: int = 3
    bottleneck: int = 4
    classes: int = 10


class Backbone(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(cfg.features, cfg.width), nn.GELU()]
        for _ in range(cfg.depth - 1):
            layers += [nn.Linear(cfg.width, cfg.width), nn.GELU()]
        layers += [nn.Linear(cfg.width, cfg.bottleneck), nn.LayerNorm(cfg.bottleneck)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FineTuner(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.backbone = Backbone(cfg)
        self.classifier = nn.Linear(cfg.bottleneck, cfg.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            features = self.backbone(x)
        return self.classifier(features)


def build_model() -> nn.Module:
    return FineTuner(Config())


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 32)
