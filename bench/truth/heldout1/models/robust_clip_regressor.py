"""Regressor with per-batch robust (percentile) clipping of its latent features."""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ClipConfig:
    in_dim: int = 16
    hidden: int = 64
    latent: int = 6
    out_dim: int = 4
    lo_pct: float = 1.0
    hi_pct: float = 99.0


class RobustClipRegressor(nn.Module):
    def __init__(self, cfg: ClipConfig = ClipConfig()):
        super().__init__()
        self.cfg = cfg
        self.encoder = nn.Sequential(
            nn.Linear(cfg.in_dim, cfg.hidden),
            nn.SiLU(),
            nn.Linear(cfg.hidden, cfg.hidden),
            nn.SiLU(),
            nn.Linear(cfg.hidden, cfg.latent),
        )
        self.decoder = nn.Sequential(
            nn.Linear(cfg.latent, cfg.hidden), nn.SiLU(), nn.Linear(cfg.hidden, cfg.out_dim)
        )

    def _clip(self, z):
        # percentile clipping per latent channel (numpy has the percentile we want)
        arr = z.detach().cpu().numpy()
        lo = np.percentile(arr, self.cfg.lo_pct, axis=0, keepdims=True)
        hi = np.percentile(arr, self.cfg.hi_pct, axis=0, keepdims=True)
        arr = np.clip(arr, lo, hi)
        return torch.from_numpy(arr).to(device=z.device, dtype=z.dtype)

    def forward(self, x):
        z = self.encoder(x)
        z = self._clip(z)
        return self.decoder(z)


# ---- synthetic task ------------------------------------------------------------------------
_g = torch.Generator().manual_seed(505)
_W1 = torch.randn(16, 32, generator=_g) / 4.0
_W2 = torch.randn(32, 4, generator=_g) / 32**0.5


def target_fn(x):
    return torch.tanh(x @ _W1.to(x.device)) @ _W2.to(x.device) * 2.0


def build_model():
    return RobustClipRegressor(ClipConfig())


def example_inputs(batch_size: int):
    return torch.randn(batch_size, 16)


def loss_fn(output, inputs):
    return F.mse_loss(output, target_fn(inputs))
