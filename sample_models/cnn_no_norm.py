"""Pathological: a MobileNet-style CNN with its BatchNorm layers left out (expect: vanishing).

torchvision's MobileNets initialise every conv with Kaiming's fan-out mode, which for a depthwise
conv (fan-out 9 x channels, fan-in 9) is far below the variance-preserving scale: harmless while
a BatchNorm follows each conv (Ioffe & Szegedy 2015), fatal without one. The forward signal
shrinks at every layer (He et al. 2015) until the classifier reads features about 1/170 of the
stem's output; each gradient is tiny while the depth ratio looks fine. Memorising 16 random
labels, 100 steps: cross-entropy 2.30 -> 1.82 with SGD (lr 0.01, momentum 0.9), -> 1.57 with
Adam (lr 1e-3); the same net with fan-in init (``Net(init="fan_in")``, a healthy model)
reaches 0.31 and 0.0017.
"""

import torch
from torch import nn


class InvertedResidual(nn.Module):
    def __init__(self, channels: int, expand: int = 4):
        super().__init__()
        hidden = channels * expand
        self.expand = nn.Conv2d(channels, hidden, 1, bias=False)
        self.depthwise = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False)
        self.project = nn.Conv2d(hidden, channels, 1, bias=False)
        self.act = nn.ReLU6()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.act(self.depthwise(self.act(self.expand(x)))))


class Net(nn.Module):
    def __init__(
        self, width: int = 32, blocks: int = 2, classes: int = 10, init: str = "fan_out"
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False)
        self.blocks = nn.Sequential(*[InvertedResidual(width) for _ in range(blocks)])
        self.head_conv = nn.Conv2d(width, 128, 1, bias=False)
        self.classifier = nn.Linear(128, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode=init)  # type: ignore[arg-type]
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.classifier(torch.relu(self.head_conv(x)).mean((2, 3)))


def build_model() -> nn.Module:
    return Net()


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 3, 32, 32)
