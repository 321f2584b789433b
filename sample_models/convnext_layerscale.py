"""Healthy: ConvNeXt-style blocks with LayerScale 1e-6 (expect: nothing above info).

Each block computes ``x + gamma * mlp(norm(dwconv(x)))`` with ``gamma`` a plain
``nn.Parameter`` of the block initialised to 1e-6, as timm's ConvNeXt keeps it (Liu et al.
2022; LayerScale, Touvron et al. 2021). The branches start nearly switched off, so the layers
inside them get a gradient scaled by 1e-6; the identity paths carry the signal, and the net
trains normally (AdamW: loss 2.34 -> 0.14 in 30 steps in the issue's measurement, gamma grows
to 0.03). The small factor is a design, recognised by what it multiplies, not by its name.
"""

import torch
from torch import nn


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over channels of an NCHW tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Block(nn.Module):
    def __init__(self, dim: int, layer_scale: float = 1e-6) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv_dw(x).permute(0, 2, 3, 1)
        x = self.fc2(self.act(self.fc1(self.norm(x))))
        x = x.mul(self.gamma).permute(0, 3, 1, 2)
        return shortcut + x


class ConvNeXt(nn.Module):
    def __init__(
        self,
        dims: tuple[int, ...] = (16, 32, 64),
        depths: tuple[int, ...] = (2, 2, 2),
        num_classes: int = 10,
        layer_scale: float = 1e-6,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4), LayerNorm2d(dims[0]))
        stages = []
        for i, (dim, depth) in enumerate(zip(dims, depths, strict=True)):
            down = (
                nn.Identity()
                if i == 0
                else nn.Sequential(LayerNorm2d(dims[i - 1]), nn.Conv2d(dims[i - 1], dim, 2, 2))
            )
            stages.append(nn.Sequential(down, *[Block(dim, layer_scale) for _ in range(depth)]))
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.head(self.norm(x.mean(dim=(2, 3))))


def build_model() -> nn.Module:
    return ConvNeXt()


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 3, 32, 32)
