"""Classifier that logs a calibration gap from an auxiliary confidence head (head not trained yet)."""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class CalibConfig:
    in_dim: int = 16
    hidden: int = 64
    n_classes: int = 6


class CalibratedClassifier(nn.Module):
    def __init__(self, cfg: CalibConfig = CalibConfig()):
        super().__init__()
        self.cfg = cfg
        self.trunk = nn.Sequential(
            nn.Linear(cfg.in_dim, cfg.hidden),
            nn.ReLU(),
            nn.Linear(cfg.hidden, cfg.hidden),
            nn.ReLU(),
        )
        self.cls_head = nn.Linear(cfg.hidden, cfg.n_classes)
        # confidence estimator; we only monitor it for now (its loss lands in a later PR)
        self.conf_head = nn.Sequential(nn.Linear(cfg.hidden, 16), nn.ReLU(), nn.Linear(16, 1))
        self.metrics: dict = {}

    def forward(self, x):
        h = self.trunk(x)
        logits = self.cls_head(h)
        conf = torch.sigmoid(self.conf_head(h)).squeeze(-1)
        maxp = logits.softmax(-1).max(-1).values
        self.metrics["conf_gap"] = (conf - maxp).abs().mean().item()
        return logits


_g = torch.Generator().manual_seed(1313)
_T1 = torch.randn(16, 32, generator=_g) / 4.0
_T2 = torch.randn(32, 6, generator=_g)


def target_fn(x):
    return (torch.tanh(x @ _T1.to(x.device)) @ _T2.to(x.device)).argmax(-1)


def build_model():
    return CalibratedClassifier(CalibConfig())


def example_inputs(batch_size: int):
    return torch.randn(batch_size, 16)


def loss_fn(output, inputs):
    return F.cross_entropy(output, target_fn(inputs))
