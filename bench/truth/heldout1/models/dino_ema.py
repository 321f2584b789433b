"""DINO-style self-distillation with an EMA teacher, plus a supervised regression head."""

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class DinoConfig:
    in_dim: int = 16
    hidden: int = 64
    feat_dim: int = 32
    n_prototypes: int = 32
    out_dim: int = 2
    student_temp: float = 0.1
    teacher_temp: float = 0.04
    momentum: float = 0.99
    center_momentum: float = 0.9


class Backbone(nn.Module):
    def __init__(self, cfg: DinoConfig):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(cfg.in_dim, cfg.hidden),
            nn.GELU(),
            nn.Linear(cfg.hidden, cfg.feat_dim),
            nn.LayerNorm(cfg.feat_dim),
        )
        self.proto = nn.Linear(cfg.feat_dim, cfg.n_prototypes)

    def forward(self, x):
        f = self.net(x)
        return f, self.proto(f)


class DINO(nn.Module):
    def __init__(self, cfg: DinoConfig = DinoConfig()):
        super().__init__()
        self.cfg = cfg
        self.student = Backbone(cfg)
        self.teacher = copy.deepcopy(self.student)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.regressor = nn.Linear(cfg.feat_dim, cfg.out_dim)
        self.register_buffer("center", torch.zeros(cfg.n_prototypes))

    @torch.no_grad()
    def update_teacher(self, teacher_logits=None):
        m = self.cfg.momentum
        for ps, pt in zip(self.student.parameters(), self.teacher.parameters()):
            pt.mul_(m).add_(ps.detach(), alpha=1 - m)
        if teacher_logits is not None:
            c = self.cfg.center_momentum
            self.center.mul_(c).add_(teacher_logits.mean(0), alpha=1 - c)

    def forward(self, global_view, local_view):
        feats, s_logits = self.student(local_view)
        with torch.no_grad():
            _, t_logits = self.teacher(global_view)
            t_probs = F.softmax((t_logits - self.center) / self.cfg.teacher_temp, dim=-1)
        return {
            "pred": self.regressor(feats),
            "student_logp": F.log_softmax(s_logits / self.cfg.student_temp, dim=-1),
            "teacher_probs": t_probs,
            "teacher_logits": t_logits,
        }


_g = torch.Generator().manual_seed(1010)
_W1 = torch.randn(16, 32, generator=_g) / 4.0
_W2 = torch.randn(32, 2, generator=_g) / 32**0.5


def target_fn(x):
    return torch.tanh(x @ _W1.to(x.device)) @ _W2.to(x.device) * 2.0


def build_model():
    return DINO(DinoConfig())


def example_inputs(batch_size: int):
    x = torch.randn(batch_size, 16)
    return {
        "global_view": x + 0.1 * torch.randn_like(x),
        "local_view": x + 0.3 * torch.randn_like(x),
    }


def loss_fn(output, inputs):
    sup = F.mse_loss(output["pred"], target_fn(inputs["global_view"]))
    distill = -(output["teacher_probs"] * output["student_logp"]).sum(-1).mean()
    return sup + 0.1 * distill
