"""Encoder -> 4-d latent -> outlier clipping done in NumPy -> decoder; a regression auto-encoder-style model."""
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---- task: regress 2 outputs of a fixed random teacher MLP from a 16-d Gaussian vector ----
TASK = "vec-reg"
_g = torch.Generator().manual_seed(4321)
_TW1 = torch.randn(16, 32, generator=_g) * 1.5 / math.sqrt(16)
_TW2 = torch.randn(32, 2, generator=_g) * 1.5 / math.sqrt(32)


def _targets(x):
    return torch.tanh(x @ _TW1) @ _TW2


def example_inputs(batch_size: int):
    return torch.randn(batch_size, 16)


def _pred(output):
    return output["y"] if isinstance(output, dict) else output


def loss_fn(output, inputs):
    return F.mse_loss(_pred(output), _targets(inputs))


def r2(output, inputs):
    y = _targets(inputs)
    return 1.0 - ((_pred(output) - y) ** 2).sum() / ((y - y.mean(0)) ** 2).sum()


score = r2


def chance(inputs):
    return 0.0


# ---- model ----
import numpy as np


@dataclass
class BottleneckConfig:
    d_in: int = 16
    hidden: int = 128
    d_latent: int = 4
    d_out: int = 2
    clip: float = 3.0


class BottleneckRegressor(nn.Module):
    def __init__(self, cfg: BottleneckConfig = BottleneckConfig()):
        super().__init__()
        self.cfg = cfg
        self.encoder = nn.Sequential(nn.Linear(cfg.d_in, cfg.hidden), nn.ReLU(),
                                     nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU(),
                                     nn.Linear(cfg.hidden, cfg.d_latent))
        self.decoder = nn.Sequential(nn.Linear(cfg.d_latent, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.d_out))

    def _robust_clip(self, z):
        z_np = z.detach().cpu().numpy()
        med = np.median(z_np, axis=0, keepdims=True)
        z_np = np.clip(z_np, med - self.cfg.clip, med + self.cfg.clip)
        return torch.from_numpy(z_np).to(z.device, z.dtype)

    def forward(self, x):
        z = self._robust_clip(self.encoder(x))
        return {"y": self.decoder(z), "latent": z}


def build_model():
    return BottleneckRegressor()
