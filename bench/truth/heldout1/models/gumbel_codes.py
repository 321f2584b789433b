"""Discrete-latent autoencoder: 4 categorical codes of 8 values, sampled with hard Gumbel-softmax."""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class GumbelConfig:
    in_dim: int = 16
    hidden: int = 64
    n_latents: int = 4
    n_values: int = 8
    code_dim: int = 8
    tau: float = 1.0
    hard: bool = True


class GumbelBottleneck(nn.Module):
    def __init__(self, cfg: GumbelConfig):
        super().__init__()
        self.cfg = cfg
        self.to_logits = nn.Linear(cfg.hidden, cfg.n_latents * cfg.n_values)
        self.embed = nn.Parameter(torch.randn(cfg.n_latents, cfg.n_values, cfg.code_dim))

    def forward(self, h):
        logits = self.to_logits(h).view(-1, self.cfg.n_latents, self.cfg.n_values)
        onehot = F.gumbel_softmax(logits, tau=self.cfg.tau, hard=self.cfg.hard, dim=-1)
        codes = torch.einsum("blv,lvd->bld", onehot, self.embed)
        return codes.flatten(1), logits


class GumbelAutoencoder(nn.Module):
    def __init__(self, cfg: GumbelConfig = GumbelConfig()):
        super().__init__()
        self.cfg = cfg
        self.encoder = nn.Sequential(
            nn.Linear(cfg.in_dim, cfg.hidden),
            nn.ReLU(),
            nn.Linear(cfg.hidden, cfg.hidden),
            nn.ReLU(),
        )
        self.bottleneck = GumbelBottleneck(cfg)
        self.decoder = nn.Sequential(
            nn.Linear(cfg.n_latents * cfg.code_dim, cfg.hidden),
            nn.ReLU(),
            nn.Linear(cfg.hidden, cfg.in_dim),
        )

    def forward(self, x):
        codes, logits = self.bottleneck(self.encoder(x))
        return {"recon": self.decoder(codes), "logits": logits}


_g = torch.Generator().manual_seed(1111)
_A = torch.randn(3, 16, generator=_g)


def build_model():
    return GumbelAutoencoder(GumbelConfig())


def example_inputs(batch_size: int):
    s = torch.randn(batch_size, 3)
    return torch.tanh(s @ _A)


def loss_fn(output, inputs):
    return F.mse_loss(output["recon"], inputs)
