"""Control for graph-node-cls: 2-layer GraphSAGE-style net (separate self and neighbour weights)."""
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---- task: node classification on random graphs; a node's class depends on its own features
#      and the mean of its neighbours' (fixed random linear teacher, 3 classes) ----
TASK = "graph-node-cls"
N_NODES = 16
N_FEAT = 8
EVAL_BATCH = 128    # graphs
_g = torch.Generator().manual_seed(777)
_TS = torch.randn(N_FEAT, 3, generator=_g)
_TN = torch.randn(N_FEAT, 3, generator=_g)


def _mean_neigh(x, adj):
    deg = adj.sum(-1, keepdim=True).clamp(min=1.0)
    return (adj @ x) / deg


def _labels(x, adj):
    return (x @ _TS + _mean_neigh(x, adj) @ _TN).argmax(-1)          # (B, N)


def example_inputs(batch_size: int):
    b = max(1, batch_size // 4)     # 128 -> 32 graphs of 16 nodes
    x = torch.randn(b, N_NODES, N_FEAT)
    upper = (torch.rand(b, N_NODES, N_NODES) < 0.2).float().triu(1)
    adj = upper + upper.transpose(1, 2)
    return {"x": x, "adj": adj}


def _logits(output):
    return output["logits"] if isinstance(output, dict) else output


def loss_fn(output, inputs):
    lg = _logits(output)
    return F.cross_entropy(lg.reshape(-1, lg.shape[-1]), _labels(inputs["x"], inputs["adj"]).reshape(-1))


def accuracy(output, inputs):
    return (_logits(output).argmax(-1) == _labels(inputs["x"], inputs["adj"])).float().mean()


score = accuracy


def chance(inputs):
    y = _labels(inputs["x"], inputs["adj"]).reshape(-1)
    return torch.bincount(y, minlength=3).max().item() / y.shape[0]


# ---- model ----


class SAGELayer(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.self_lin = nn.Linear(d_in, d_out)
        self.neigh_lin = nn.Linear(d_in, d_out, bias=False)

    def forward(self, h, adj):
        deg = adj.sum(-1, keepdim=True).clamp(min=1.0)
        return self.self_lin(h) + self.neigh_lin((adj @ h) / deg)


class SAGE(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = SAGELayer(N_FEAT, 64)
        self.l2 = SAGELayer(64, 3)

    def forward(self, x, adj):
        return self.l2(F.relu(self.l1(x, adj)), adj)


def build_model():
    return SAGE()
