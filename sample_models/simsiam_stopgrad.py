"""Healthy: SimSiam (Chen & He 2021), whose loss stops the gradient of one branch on purpose
(expect: healthy, no cut graph).

``z.detach()`` cuts one route from the encoder to the loss, but the same encoder still gets
its gradient through the predictor's route, so nothing is left untrained.
"""

import torch
import torch.nn.functional as F
from torch import nn


class SimSiam(nn.Module):
    def __init__(self, features: int = 32, dim: int = 64, hidden: int = 16) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(features, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Linear(128, dim)
        )
        self.predictor = nn.Sequential(
            nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, dim)
        )

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, torch.Tensor]:
        z1, z2 = self.encoder(x1), self.encoder(x2)
        return {"p1": self.predictor(z1), "p2": self.predictor(z2), "z1": z1, "z2": z2}


def build_model() -> nn.Module:
    return SimSiam()


def example_inputs(batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(batch_size, 32)
    return x + 0.1 * torch.randn_like(x), x + 0.1 * torch.randn_like(x)


def loss_fn(out: dict[str, torch.Tensor], views: object) -> torch.Tensor:
    def d(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return -F.cosine_similarity(p, z.detach(), dim=-1).mean()  # the stop-gradient

    return 0.5 * d(out["p1"], out["z2"]) + 0.5 * d(out["p2"], out["z1"])
