"""16-layer GCN (Kipf & Welling propagation, symmetric normalisation with self-loops), tanh, no skips."""
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


@dataclass
class GCNConfig:
    d_in: int = N_FEAT
    hidden: int = 64
    n_layers: int = 16
    n_classes: int = 3


def normalised_adjacency(adj):
    a = adj + torch.eye(adj.shape[-1], device=adj.device)
    d = a.sum(-1).rsqrt()
    return d.unsqueeze(-1) * a * d.unsqueeze(-2)


class GCNLayer(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.lin = nn.Linear(d_in, d_out)

    def forward(self, h, a_hat):
        return a_hat @ self.lin(h)


class DeepGCN(nn.Module):
    def __init__(self, cfg: GCNConfig = GCNConfig()):
        super().__init__()
        dims = [cfg.d_in] + [cfg.hidden] * (cfg.n_layers - 1)
        self.layers = nn.ModuleList(GCNLayer(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.out = GCNLayer(cfg.hidden, cfg.n_classes)

    def forward(self, x, adj):
        a_hat = normalised_adjacency(adj)
        h = x
        for layer in self.layers:
            h = torch.tanh(layer(h, a_hat))
        return {"logits": self.out(h, a_hat)}


def build_model():
    return DeepGCN()
