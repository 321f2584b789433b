"""VQ-VAE style autoencoder with a straight-through quantizer and commitment loss."""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class VQVAEConfig:
    in_dim: int = 16
    hidden: int = 64
    code_dim: int = 8
    codebook_size: int = 64
    beta: float = 0.25


class StraightThroughVQ(nn.Module):
    def __init__(self, num_codes: int, dim: int):
        super().__init__()
        self.codebook = nn.Embedding(num_codes, dim)
        nn.init.normal_(self.codebook.weight, std=0.5)

    def forward(self, z):
        d = torch.cdist(z, self.codebook.weight)
        codes = d.argmin(dim=-1)
        q = self.codebook(codes)
        q_st = z + (q - z).detach()  # straight-through estimator
        return q_st, q, codes


class VQVAE(nn.Module):
    def __init__(self, cfg: VQVAEConfig = VQVAEConfig()):
        super().__init__()
        self.cfg = cfg
        self.encoder = nn.Sequential(
            nn.Linear(cfg.in_dim, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.code_dim)
        )
        self.vq = StraightThroughVQ(cfg.codebook_size, cfg.code_dim)
        self.decoder = nn.Sequential(
            nn.Linear(cfg.code_dim, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.in_dim)
        )

    def forward(self, x):
        z = self.encoder(x)
        q_st, q, codes = self.vq(z)
        return {"recon": self.decoder(q_st), "z": z, "q": q, "codes": codes}


_g = torch.Generator().manual_seed(909)
_A = torch.randn(3, 16, generator=_g)


def build_model():
    return VQVAE(VQVAEConfig())


def example_inputs(batch_size: int):
    s = torch.randn(batch_size, 3)
    return torch.tanh(s @ _A)


def loss_fn(output, inputs):
    z, q = output["z"], output["q"]
    recon = F.mse_loss(output["recon"], inputs)
    codebook = F.mse_loss(q, z.detach())
    commit = F.mse_loss(z, q.detach())
    return recon + codebook + VQVAEConfig.beta * commit
