"""VQ-VAE-style autoencoder (van den Oord et al., 2017) on clustered vectors.

The quantiser uses the straight-through estimator z + (z_q - z).detach(); the codebook is
trained by the codebook loss ||sg[z] - e||^2 and the encoder by the commitment loss.
"""
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class VQConfig:
    d_in: int = 32
    d_hidden: int = 128
    d_latent: int = 8
    codebook_size: int = 64
    beta: float = 0.25
    n_clusters: int = 24


CFG = VQConfig()


class VectorQuantizer(nn.Module):
    def __init__(self, n_codes: int, dim: int):
        super().__init__()
        self.codebook = nn.Embedding(n_codes, dim)
        nn.init.uniform_(self.codebook.weight, -1.0 / n_codes, 1.0 / n_codes)

    def forward(self, z):
        d = torch.cdist(z, self.codebook.weight)
        idx = d.argmin(dim=-1)
        z_q = self.codebook(idx)
        z_st = z + (z_q - z).detach()        # straight-through
        return z_st, z_q, idx


class VQAutoencoder(nn.Module):
    def __init__(self, cfg: VQConfig = CFG):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(cfg.d_in, cfg.d_hidden), nn.ReLU(),
                                     nn.Linear(cfg.d_hidden, cfg.d_latent))
        self.quantizer = VectorQuantizer(cfg.codebook_size, cfg.d_latent)
        self.decoder = nn.Sequential(nn.Linear(cfg.d_latent, cfg.d_hidden), nn.ReLU(),
                                     nn.Linear(cfg.d_hidden, cfg.d_in))

    def forward(self, x):
        z = self.encoder(x)
        z_st, z_q, idx = self.quantizer(z)
        return {"recon": self.decoder(z_st), "z": z, "z_q": z_q, "codes": idx}


@lru_cache(maxsize=1)
def _centers():
    g = torch.Generator().manual_seed(5)
    return torch.randn(CFG.n_clusters, CFG.d_in, generator=g)


def example_inputs(batch_size: int):
    k = torch.randint(0, CFG.n_clusters, (batch_size,))
    return {"x": _centers()[k] + 0.1 * torch.randn(batch_size, CFG.d_in)}


def make_targets(inputs):
    return inputs["x"]


def build_model():
    return VQAutoencoder(CFG)


def loss_fn(output, inputs):
    recon = F.mse_loss(output["recon"], make_targets(inputs))
    codebook = F.mse_loss(output["z_q"], output["z"].detach())
    commit = F.mse_loss(output["z"], output["z_q"].detach())
    return recon + codebook + CFG.beta * commit
