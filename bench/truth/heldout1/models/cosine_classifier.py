"""Cosine-similarity (NormFace-style) classifier with a learned logit scale."""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class CosineConfig:
    in_dim: int = 16
    hidden: int = 64
    feat_dim: int = 32
    n_classes: int = 10
    init_scale: float = 1.0


class CosineHead(nn.Module):
    def __init__(self, feat_dim: int, n_classes: int, init_scale: float):
        super().__init__()
        self.prototypes = nn.Parameter(torch.randn(n_classes, feat_dim) / feat_dim**0.5)
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_scale)))
        self.last_scale = init_scale

    def forward(self, feats):
        cos = F.normalize(feats, dim=-1) @ F.normalize(self.prototypes, dim=-1).t()
        scale = self.log_scale.exp().clamp(max=100.0).item()
        self.last_scale = scale  # logged by the trainer
        return scale * cos


class CosineClassifier(nn.Module):
    def __init__(self, cfg: CosineConfig = CosineConfig()):
        super().__init__()
        self.cfg = cfg
        self.backbone = nn.Sequential(
            nn.Linear(cfg.in_dim, cfg.hidden),
            nn.ReLU(),
            nn.Linear(cfg.hidden, cfg.hidden),
            nn.ReLU(),
            nn.Linear(cfg.hidden, cfg.feat_dim),
        )
        self.head = CosineHead(cfg.feat_dim, cfg.n_classes, cfg.init_scale)

    def forward(self, x):
        return self.head(self.backbone(x))


# ---- synthetic task: classes from a fixed random teacher -----------------------------------
_g = torch.Generator().manual_seed(404)
_T1 = torch.randn(16, 32, generator=_g) / 4.0
_T2 = torch.randn(32, 10, generator=_g)


def target_fn(x):
    return (torch.tanh(x @ _T1.to(x.device)) @ _T2.to(x.device)).argmax(-1)


def build_model():
    return CosineClassifier(CosineConfig())


def example_inputs(batch_size: int):
    return torch.randn(batch_size, 16)


def loss_fn(output, inputs):
    return F.cross_entropy(output, target_fn(inputs))
