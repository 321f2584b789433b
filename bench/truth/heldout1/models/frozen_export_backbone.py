"""1-D conv sequence regressor; the backbone is fine-tuned together with the head."""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ConvConfig:
    channels: int = 4
    length: int = 32
    width: int = 32
    feat_dim: int = 6
    out_dim: int = 3


class ConvBackbone(nn.Module):
    def __init__(self, cfg: ConvConfig):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(cfg.channels, cfg.width, 5, padding=2),
            nn.ReLU(),
            nn.Conv1d(cfg.width, cfg.width, 5, padding=2),
            nn.ReLU(),
            nn.Conv1d(cfg.width, cfg.feat_dim, 1),
        )

    def forward(self, x):
        return self.body(x).mean(dim=-1)


class SequenceRegressor(nn.Module):
    def __init__(self, cfg: ConvConfig = ConvConfig()):
        super().__init__()
        self.cfg = cfg
        self.backbone = ConvBackbone(cfg)
        self.head = nn.Sequential(
            nn.Linear(cfg.feat_dim, 64), nn.ReLU(), nn.Linear(64, cfg.out_dim)
        )

    @torch.no_grad()
    def embed(self, x):
        """Features for the export / nearest-neighbour scripts."""
        return self.backbone(x)

    def forward(self, x):
        feats = self.embed(x)
        return self.head(feats)


# ---- synthetic task ------------------------------------------------------------------------
_g = torch.Generator().manual_seed(202)
_K = torch.randn(8, 4, 5, generator=_g) / 4.0


def _raw_target(x):
    return F.relu(F.conv1d(x, _K.to(x.device), padding=2)).mean(-1)[:, :3]


_x_ref = torch.randn(4096, 4, 32, generator=_g)
_MU, _SD = _raw_target(_x_ref).mean(0), _raw_target(_x_ref).std(0)


def target_fn(x):
    return (_raw_target(x) - _MU.to(x.device)) / _SD.to(x.device)


def build_model():
    return SequenceRegressor(ConvConfig())


def example_inputs(batch_size: int):
    return torch.randn(batch_size, 4, 32)


def loss_fn(output, inputs):
    return F.mse_loss(output, target_fn(inputs))
