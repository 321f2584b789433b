"""Mixture-of-experts MLP: softmax router, top-2 dispatch, Switch-style load-balancing auxiliary loss."""
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
class MoEConfig:
    d_in: int = 32
    d_model: int = 64
    d_expert: int = 128
    n_experts: int = 4
    top_k: int = 2
    n_classes: int = 4
    aux_weight: float = 0.01


class Expert(nn.Module):
    def __init__(self, d_model, d_hidden):
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_hidden)
        self.fc2 = nn.Linear(d_hidden, d_model)

    def forward(self, h):
        return self.fc2(F.gelu(self.fc1(h)))


class MoELayer(nn.Module):
    def __init__(self, cfg: MoEConfig):
        super().__init__()
        self.cfg = cfg
        self.router = nn.Linear(cfg.d_model, cfg.n_experts)
        self.experts = nn.ModuleList(Expert(cfg.d_model, cfg.d_expert) for _ in range(cfg.n_experts))

    def forward(self, h):
        probs = self.router(h).softmax(-1)                              # (B, E)
        topv, topi = probs.topk(self.cfg.top_k, dim=-1)
        topv = topv / topv.sum(-1, keepdim=True)
        out = torch.zeros_like(h)
        for e, expert in enumerate(self.experts):
            sel = (topi == e)                                           # (B, k)
            rows = sel.any(-1).nonzero(as_tuple=True)[0]
            if rows.numel() == 0:
                continue
            w = (topv * sel).sum(-1)[rows].unsqueeze(-1)
            out = out.index_add(0, rows, w * expert(h[rows]))
        # load-balancing: fraction routed x mean router prob (Fedus et al. 2021)
        frac = F.one_hot(topi[:, 0], self.cfg.n_experts).float().mean(0)
        aux = self.cfg.n_experts * (frac * probs.mean(0)).sum()
        return h + out, aux


class MoEClassifier(nn.Module):
    def __init__(self, cfg: MoEConfig = MoEConfig()):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Linear(cfg.d_in, cfg.d_model)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.moe = MoELayer(cfg)
        self.head = nn.Linear(cfg.d_model, cfg.n_classes)

    def forward(self, x):
        h, aux = self.moe(self.norm(F.gelu(self.embed(x))))
        return {"logits": self.head(h), "aux_loss": self.cfg.aux_weight * aux}


def build_model():
    return MoEClassifier()


_task_loss = loss_fn


def loss_fn(output, inputs):
    return _task_loss(output, inputs) + output["aux_loss"]
