"""Healthy: a ReZero transformer, no LayerNorm, every residual gate starting at 0 (expect: info).

``x = x + alpha * f(x)`` with ``alpha = nn.Parameter(torch.zeros(1))`` (Bachlechner et al.
2020): each block starts as the identity, so the layers inside the branches get an exactly zero
gradient until the first optimizer step moves alpha. That is the design (no-gradient at info).
"""

import torch
from torch import nn


class ReZeroBlock(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.ReLU(), nn.Linear(4 * dim, dim))
        self.alpha = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.alpha * self.attn(x, x, x, need_weights=False)[0]
        return x + self.alpha * self.ff(x)


class ReZeroTransformer(nn.Module):
    def __init__(self, vocab: int = 500, dim: int = 64, heads: int = 4, depth: int = 6) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.blocks = nn.Sequential(*[ReZeroBlock(dim, heads) for _ in range(depth)])
        self.head = nn.Linear(dim, 4)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.embed(tokens)).mean(dim=1))


def build_model() -> nn.Module:
    return ReZeroTransformer()


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randint(0, 500, (batch_size, 24))
