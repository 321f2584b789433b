"""Healthy: an image CNN and a tabular MLP fused into a classification and a regression head.

Dicts in, dicts out, the regression head called before the classification head (expect:
nothing). Forward call order is not depth here: the two heads both sit next to the loss, and
the CNN and the MLP are two branches. Comparing the CNN's first layer with ``reg_head`` (the
last layer but one called) as if they were the two ends of one stack made a false vanishing
warning (decay 4e-3); calling the heads in the other order made it disappear.
"""

import torch
import torch.nn.functional as F
from torch import nn


class ImageTabularNet(nn.Module):
    def __init__(self, tab_features: int = 12, n_classes: int = 5, width: int = 64) -> None:
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1, stride=2),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1, stride=2),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.mlp = nn.Sequential(
            nn.Linear(tab_features, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU()
        )
        self.fuse = nn.Sequential(nn.Linear(64 + width, width), nn.ReLU())
        self.cls_head = nn.Linear(width, n_classes)
        self.reg_head = nn.Linear(width, 1)

    def forward(self, image: torch.Tensor, tabular: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.fuse(torch.cat([self.cnn(image), self.mlp(tabular)], dim=1))
        value = self.reg_head(h).squeeze(1)
        return {"logits": self.cls_head(h), "value": value}


def build_model() -> nn.Module:
    return ImageTabularNet()


def example_inputs(batch_size: int) -> dict[str, torch.Tensor]:
    return {"image": torch.randn(batch_size, 3, 32, 32), "tabular": torch.randn(batch_size, 12)}


def loss_fn(output: dict[str, torch.Tensor], inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    labels = torch.randint(0, 5, (output["logits"].shape[0],))
    targets = torch.randn(output["value"].shape[0])
    return F.cross_entropy(output["logits"], labels) + F.mse_loss(output["value"], targets)
