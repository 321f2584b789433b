"""Tabular regressor that also exposes its embedding for a retrieval index."""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class EmbedderConfig:
    in_dim: int = 16
    hidden: int = 64
    emb_dim: int = 6
    out_dim: int = 4


class Encoder(nn.Module):
    def __init__(self, cfg: EmbedderConfig):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(cfg.in_dim, cfg.hidden),
            nn.GELU(),
            nn.Linear(cfg.hidden, cfg.hidden),
            nn.GELU(),
            nn.Linear(cfg.hidden, cfg.emb_dim),
        )
        self.norm = nn.LayerNorm(cfg.emb_dim)

    def forward(self, x):
        return self.norm(self.net(x))


class TabularEmbedder(nn.Module):
    def __init__(self, cfg: EmbedderConfig = EmbedderConfig()):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.head = nn.Sequential(
            nn.Linear(cfg.emb_dim, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.out_dim)
        )

    def forward(self, x):
        emb = self.encoder(x)
        # the embedding goes into the retrieval index as is: no graph attached
        emb = emb.detach()
        pred = self.head(emb)
        return {"pred": pred, "embedding": emb}


# ---- synthetic task: a fixed random teacher network ---------------------------------------
_g = torch.Generator().manual_seed(101)
_W1 = torch.randn(16, 32, generator=_g) / 4.0
_W2 = torch.randn(32, 4, generator=_g) / 32**0.5


def target_fn(x):
    return torch.tanh(x @ _W1.to(x.device)) @ _W2.to(x.device) * 2.0


def build_model():
    return TabularEmbedder(EmbedderConfig())


def example_inputs(batch_size: int):
    return torch.randn(batch_size, 16)


def loss_fn(output, inputs):
    return F.mse_loss(output["pred"], target_fn(inputs))
