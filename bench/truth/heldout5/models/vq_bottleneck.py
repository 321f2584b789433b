"""VQ regressor: encoder -> nearest codebook vector (argmin) -> decoder, codebook of 32 x 8."""
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


@dataclass
class VQConfig:
    d_in: int = 16
    hidden: int = 64
    d_code: int = 8
    n_codes: int = 32
    d_out: int = 2


class VectorQuantizer(nn.Module):
    def __init__(self, n_codes, d_code):
        super().__init__()
        self.codebook = nn.Embedding(n_codes, d_code)
        nn.init.normal_(self.codebook.weight)

    def forward(self, z):
        d = torch.cdist(z, self.codebook.weight)
        idx = d.argmin(dim=-1)
        return self.codebook(idx), idx


class VQRegressor(nn.Module):
    def __init__(self, cfg: VQConfig = VQConfig()):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(cfg.d_in, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.d_code))
        self.vq = VectorQuantizer(cfg.n_codes, cfg.d_code)
        self.decoder = nn.Sequential(nn.Linear(cfg.d_code, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.d_out))

    def forward(self, x):
        zq, idx = self.vq(self.encoder(x))
        return {"y": self.decoder(zq), "codes": idx}


def build_model():
    return VQRegressor()
