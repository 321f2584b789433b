"""SimSiam on 16-d tabular views, with an online linear probe (solo-learn style)."""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class SimSiamConfig:
    in_dim: int = 16
    hidden: int = 64
    proj_dim: int = 32
    pred_hidden: int = 16
    n_classes: int = 5
    probe_weight: float = 1.0


class SimSiam(nn.Module):
    def __init__(self, cfg: SimSiamConfig = SimSiamConfig()):
        super().__init__()
        self.cfg = cfg
        self.encoder = nn.Sequential(
            nn.Linear(cfg.in_dim, cfg.hidden),
            nn.BatchNorm1d(cfg.hidden),
            nn.ReLU(),
            nn.Linear(cfg.hidden, cfg.proj_dim),
            nn.BatchNorm1d(cfg.proj_dim),
        )
        self.predictor = nn.Sequential(
            nn.Linear(cfg.proj_dim, cfg.pred_hidden),
            nn.BatchNorm1d(cfg.pred_hidden),
            nn.ReLU(),
            nn.Linear(cfg.pred_hidden, cfg.proj_dim),
        )
        self.probe = nn.Linear(cfg.proj_dim, cfg.n_classes)

    def forward(self, view1, view2):
        z1, z2 = self.encoder(view1), self.encoder(view2)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        # online linear evaluation: the probe must not shape the representation
        probe_logits = self.probe(z1.detach())
        return {"z1": z1, "z2": z2, "p1": p1, "p2": p2, "probe_logits": probe_logits}


def simsiam_loss(p, z):
    return -F.cosine_similarity(p, z.detach(), dim=-1).mean()


# ---- synthetic data: two noisy views of a point, classes from a fixed teacher -------------
_g = torch.Generator().manual_seed(808)
_T1 = torch.randn(16, 32, generator=_g) / 4.0
_T2 = torch.randn(32, 5, generator=_g)


def target_fn(x):
    return (torch.tanh(x @ _T1.to(x.device)) @ _T2.to(x.device)).argmax(-1)


def build_model():
    return SimSiam(SimSiamConfig())


def example_inputs(batch_size: int):
    x = torch.randn(batch_size, 16)
    v1 = x + 0.3 * torch.randn_like(x)
    v2 = x * (torch.rand_like(x) > 0.2) + 0.3 * torch.randn_like(x)
    return {"view1": v1, "view2": v2}


def loss_fn(output, inputs):
    ssl = 0.5 * simsiam_loss(output["p1"], output["z2"]) + 0.5 * simsiam_loss(
        output["p2"], output["z1"]
    )
    probe = F.cross_entropy(output["probe_logits"], target_fn(inputs["view1"]))
    return ssl + SimSiamConfig.probe_weight * probe
