"""Classifier with two deliberate stop-gradients:

* a linear probe on detached features (monitoring; must not shape the encoder), and
* a SimSiam-style consistency term whose target branch is detached.

The encoder is trained by the main cross-entropy loss and the online consistency branch.
"""
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ProbeConfig:
    d_in: int = 20
    width: int = 128
    d_feat: int = 32
    n_classes: int = 6
    noise: float = 0.1
    consistency_weight: float = 0.1


CFG = ProbeConfig()


class Encoder(nn.Module):
    def __init__(self, cfg: ProbeConfig):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(cfg.d_in, cfg.width), nn.ReLU(),
                                 nn.Linear(cfg.width, cfg.width), nn.ReLU(),
                                 nn.Linear(cfg.width, cfg.d_feat))

    def forward(self, x):
        return self.net(x)


class ProbedClassifier(nn.Module):
    def __init__(self, cfg: ProbeConfig = CFG):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.predictor = nn.Sequential(nn.Linear(cfg.d_feat, cfg.d_feat), nn.ReLU(),
                                       nn.Linear(cfg.d_feat, cfg.d_feat))
        self.head = nn.Linear(cfg.d_feat, cfg.n_classes)
        self.probe = nn.Linear(cfg.d_feat, 1)       # predicts ||x||/sqrt(d) from frozen features

    def forward(self, x, x_aug):
        h = self.encoder(x)
        h_aug = self.encoder(x_aug)
        return {
            "logits": self.head(h),
            "pred": self.predictor(h_aug),
            "target": h.detach(),
            "probe": self.probe(h.detach()).squeeze(-1),
        }


@lru_cache(maxsize=1)
def _teacher():
    g = torch.Generator().manual_seed(11)
    return torch.randn(CFG.d_in, 64, generator=g) / CFG.d_in ** 0.5, torch.randn(64, CFG.n_classes, generator=g)


def example_inputs(batch_size: int):
    x = torch.randn(batch_size, CFG.d_in)
    return {"x": x, "x_aug": x + CFG.noise * torch.randn_like(x)}


def make_targets(inputs):
    w1, w2 = _teacher()
    return (torch.relu(inputs["x"] @ w1) @ w2).argmax(-1)


def build_model():
    return ProbedClassifier(CFG)


def loss_fn(output, inputs):
    ce = F.cross_entropy(output["logits"], make_targets(inputs))
    cons = -F.cosine_similarity(output["pred"], output["target"], dim=-1).mean()
    probe = F.mse_loss(output["probe"], inputs["x"].norm(dim=-1) / CFG.d_in ** 0.5)
    return ce + CFG.consistency_weight * cons + probe
