"""Small VQ autoencoder for 16-d signals lying on a 3-d manifold."""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class VQConfig:
    in_dim: int = 16
    hidden: int = 64
    code_dim: int = 8
    codebook_size: int = 64


class VectorQuantizer(nn.Module):
    def __init__(self, num_codes: int, dim: int):
        super().__init__()
        self.codebook = nn.Embedding(num_codes, dim)
        nn.init.normal_(self.codebook.weight, std=0.5)

    def forward(self, z):
        d = (
            z.pow(2).sum(-1, keepdim=True)
            - 2 * z @ self.codebook.weight.t()
            + self.codebook.weight.pow(2).sum(-1)
        )
        codes = d.argmin(dim=-1)
        q = self.codebook(codes)
        return q, codes


class VQAutoencoder(nn.Module):
    def __init__(self, cfg: VQConfig = VQConfig()):
        super().__init__()
        self.cfg = cfg
        self.encoder = nn.Sequential(
            nn.Linear(cfg.in_dim, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.code_dim)
        )
        self.quantizer = VectorQuantizer(cfg.codebook_size, cfg.code_dim)
        self.decoder = nn.Sequential(
            nn.Linear(cfg.code_dim, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.in_dim)
        )

    def forward(self, x):
        z = self.encoder(x)
        q, codes = self.quantizer(z)
        recon = self.decoder(q)
        return {"recon": recon, "z": z, "q": q, "codes": codes}


# ---- synthetic data: a fixed 3-d manifold in 16-d ------------------------------------------
_g = torch.Generator().manual_seed(303)
_A = torch.randn(3, 16, generator=_g)


def build_model():
    return VQAutoencoder(VQConfig())


def example_inputs(batch_size: int):
    s = torch.randn(batch_size, 3)
    return torch.tanh(s @ _A)


def loss_fn(output, inputs):
    recon_loss = F.mse_loss(output["recon"], inputs)
    codebook_loss = F.mse_loss(output["q"], output["z"].detach())
    return recon_loss + codebook_loss
