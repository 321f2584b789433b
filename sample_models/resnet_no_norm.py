"""Pathological: a 50-block ResNet with its BatchNorm left out (expect: exploding error).

Each block adds ``conv2(relu(conv1(x)))`` to ``x``, both convolutions He-initialised as
torchvision does. Without normalisation nothing rescales the sum: the branch has about the
variance of its input, so every block doubles the signal's variance and 50 blocks give
``2**50``. The cure keeps the architecture and starts every block near the identity: the last
layer of each residual branch zero-initialised or scaled by ``1/sqrt(blocks)`` (Goyal et al.
2017; Fixup, Zhang et al. 2019; SkipInit, De & Smith 2020).
"""

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.relu = nn.ReLU()
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.conv1(x))
        out = self.conv2(out)
        return self.relu(out + x)


class ResNet(nn.Module):
    def __init__(self, blocks: int = 50, channels: int = 16, n_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.relu = nn.ReLU()
        self.blocks = nn.Sequential(*(BasicBlock(channels) for _ in range(blocks)))
        self.head = nn.Linear(channels, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.relu(self.stem(x)))
        return self.head(x.mean(dim=(2, 3)))


def build_model() -> nn.Module:
    return ResNet()


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 3, 16, 16)
