"""Pathological under Adam without warm-up: a 24-layer post-LN transformer encoder (expect: does
not learn; fix: pre-norm).

``nn.TransformerEncoderLayer`` defaults to the original Post-LN placement, x <- LN(x + f(x)).
Xiong et al. (2020) show that at initialisation the expected gradient of the parameters near the
output is large in a Post-LN stack, so Adam's first steps at a full learning rate, without
warm-up, move them too far: a deep Post-LN transformer then sits at chance (Liu et al. 2020,
"Understanding the difficulty of training transformers"). The Pre-LN placement,
x <- x + f(LN(x)) with a final LayerNorm (``norm_first=True``), trains without warm-up
(``build_pre_ln``, the control; ``bench/fix_truth.md``).

The task: at every position, the token two places before it (a lagged copy over 8 symbols),
read through learned positions; positions 0 and 1 are not scored.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

VOCAB, LENGTH, WIDTH, LAG = 8, 16, 64, 2


class Encoder(nn.Module):
    def __init__(self, layers: int = 24, norm_first: bool = False) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, WIDTH)
        self.position = nn.Parameter(torch.randn(LENGTH, WIDTH))
        layer = nn.TransformerEncoderLayer(
            WIDTH, nhead=4, dim_feedforward=4 * WIDTH, dropout=0.0, batch_first=True,
            norm_first=norm_first,
        )  # fmt: skip
        final = nn.LayerNorm(WIDTH) if norm_first else None
        self.encoder = nn.TransformerEncoder(layer, layers, norm=final, enable_nested_tensor=False)
        self.head = nn.Linear(WIDTH, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(tokens) + self.position))


def build_model() -> nn.Module:
    return Encoder(24)


def build_pre_ln() -> nn.Module:
    return Encoder(24, norm_first=True)


def build_shallow() -> nn.Module:
    return Encoder(2)


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch_size, LENGTH))


def loss_fn(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits[:, LAG:].reshape(-1, VOCAB), tokens[:, :-LAG].reshape(-1))
