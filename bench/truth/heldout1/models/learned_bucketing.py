"""Learned bucketing: a scorer maps each row to a bucket of a learned value table."""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class BucketConfig:
    in_dim: int = 16
    hidden: int = 32
    n_buckets: int = 32
    value_dim: int = 16
    out_dim: int = 1


class LearnedBucketizer(nn.Module):
    def __init__(self, cfg: BucketConfig):
        super().__init__()
        self.n_buckets = cfg.n_buckets
        self.scorer = nn.Sequential(
            nn.Linear(cfg.in_dim, cfg.hidden), nn.Tanh(), nn.Linear(cfg.hidden, 1)
        )
        self.table = nn.Embedding(cfg.n_buckets, cfg.value_dim)

    def forward(self, x):
        pos = torch.sigmoid(self.scorer(x)).squeeze(-1) * (self.n_buckets - 1)
        idx = pos.round().long().clamp(0, self.n_buckets - 1)
        return self.table(idx), pos


class BucketRegressor(nn.Module):
    def __init__(self, cfg: BucketConfig = BucketConfig()):
        super().__init__()
        self.cfg = cfg
        self.bucketizer = LearnedBucketizer(cfg)
        self.head = nn.Sequential(
            nn.Linear(cfg.value_dim, 32), nn.ReLU(), nn.Linear(32, cfg.out_dim)
        )

    def forward(self, x):
        values, pos = self.bucketizer(x)
        return {"pred": self.head(values), "bucket_pos": pos}


# ---- synthetic task: a 1-d nonlinear function of a fixed projection ------------------------
_g = torch.Generator().manual_seed(707)
_w = torch.randn(16, generator=_g)
_w = _w / _w.norm()


def target_fn(x):
    u = x @ _w.to(x.device)
    return (torch.sin(2.0 * u) + 0.5 * u).unsqueeze(-1)


def build_model():
    return BucketRegressor(BucketConfig())


def example_inputs(batch_size: int):
    return torch.randn(batch_size, 16)


def loss_fn(output, inputs):
    return F.mse_loss(output["pred"], target_fn(inputs))
