"""Pathological: an auxiliary head that forward never calls (expect: no-gradient warning).

Its parameters are trainable but never get a gradient: optimizers keep state for them and
DistributedDataParallel fails without find_unused_parameters=True.
"""

import torch
from torch import nn


class TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.head = nn.Linear(64, 3)
        self.aux_head = nn.Linear(64, 3)  # forgotten: never used in forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def build_model() -> nn.Module:
    return TwoHeads()
