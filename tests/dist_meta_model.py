"""A model file for ``--on-meta`` (tests/test_distributed.py): a ReLU MLP He-initialised by its
own ``init_weights()``. Run on shards (after ``fully_shard`` and ``to_empty``), it appends each
layer's local shape to the file named by ``GRADCHECK_TEST_SHARDS``: what each rank holds."""

from __future__ import annotations

import os

import torch
from torch import nn


class DeepReLU(nn.Module):
    def __init__(self, width: int = 256, depth: int = 12, classes: int = 10) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.head = nn.Linear(width, classes)
        self.init_weights()

    def init_weights(self) -> None:
        # Without it PyTorch's default init (kaiming_uniform with a=sqrt(5), a gain of 1/sqrt(3))
        # shrinks the signal by depth and gradcheck finds it vanishing.
        for layer in self.layers:
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
        weight = self.layers[0].weight
        if hasattr(weight, "to_local") and "GRADCHECK_TEST_SHARDS" in os.environ:
            with open(os.environ["GRADCHECK_TEST_SHARDS"], "a", encoding="utf-8") as out:
                out.write(f"{list(weight.to_local().shape)} of {list(weight.shape)}\n")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.head(x)


def build_model() -> nn.Module:
    return DeepReLU()
