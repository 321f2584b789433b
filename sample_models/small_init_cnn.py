"""Pathological: a 15-layer sigmoid CNN whose author scaled every weight by 0.01 (expect:
vanishing error).

Every convolution sits at 1% of PyTorch's default scale, so the forward signal collapses to the
sigmoid's midpoint and the gradient shrinks by the same factor at each layer: the first layers
get exactly zero, the others ratios from 1e-20 up. Each layer alone looks like a deliberately
small (zero-initialised) one; that most of them are is an initialisation bug (Glorot & Bengio
2010). Re-initialising with Xavier (the init for sigmoid) cures it.
"""

import torch
from torch import nn


class SigmoidCNN(nn.Module):
    def __init__(self, depth: int = 15, channels: int = 16, scale: float = 0.01) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), nn.Sigmoid()]
        for _ in range(depth - 1):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.Sigmoid()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, 10)
        with torch.no_grad():
            for p in self.features.parameters():
                if p.dim() > 1:
                    p.mul_(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def build_model() -> nn.Module:
    return SigmoidCNN()


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 3, 16, 16)
