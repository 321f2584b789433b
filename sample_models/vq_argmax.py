"""Pathological: a vector-quantised bottleneck that picks codes with ``argmin`` and has no
straight-through estimator (expect: no-gradient error, a cut graph at ``argmin``).

The encoder's output chooses which codebook rows the decoder sees, so its values reach the
loss, but an index carries no gradient: the codebook (through its own loss, ``||sg(z) - q||^2``)
and the decoder train, the encoder never does. VQ-VAE (van den Oord et al. 2017) copies the
decoder's gradient to the encoder with ``z + (q - z).detach()`` and adds a commitment loss;
``build_straight_through`` does both, and trains (``bench/cut_truth.py``).
"""

import torch
import torch.nn.functional as F
from torch import nn


class VQClassifier(nn.Module):
    def __init__(self, straight_through: bool = False, codes: int = 16, dim: int = 8) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 4 * dim))
        self.codebook = nn.Embedding(codes, dim)
        self.decoder = nn.Sequential(nn.Linear(4 * dim, 128), nn.ReLU(), nn.Linear(128, 10))
        self.straight_through = straight_through
        self.dim = dim

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.encoder(x).view(x.shape[0], -1, self.dim)
        distances = torch.cdist(z, self.codebook.weight.expand(x.shape[0], -1, -1))
        q = self.codebook(distances.argmin(dim=-1))
        vq_loss = F.mse_loss(q, z.detach())  # moves the codes toward the encoder's outputs
        if self.straight_through:
            vq_loss = vq_loss + 0.25 * F.mse_loss(z, q.detach())  # commitment
            q = z + (q - z).detach()
        return {"logits": self.decoder(q.flatten(1)), "vq_loss": vq_loss}


def build_model() -> nn.Module:
    return VQClassifier()


def build_straight_through() -> nn.Module:
    return VQClassifier(straight_through=True)


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 32)


def targets(x: torch.Tensor) -> torch.Tensor:
    """Labels from a fixed random teacher: a task the model can learn."""
    teacher = torch.randn(32, 10, generator=torch.Generator().manual_seed(7))
    return (x @ teacher).argmax(-1)


def loss_fn(out: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out["logits"], targets(x)) + out["vq_loss"]
