"""Two heads on one trunk: an image CNN and a tabular MLP fused into a classifier and a regressor.

Dicts in, dicts out (expect: healthy). Short, so its table is shown whole at any width; the
long ``cnn``/``mlp`` names and the two heads exercise the name column.
"""

import torch
import torch.nn.functional as F
from torch import nn


class ImageTabularNet(nn.Module):
    def __init__(self, tab_features: int = 12, n_classes: int = 5, width: int = 32) -> None:
        super().__init__()
        self.image_encoder = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1, stride=2),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.tabular_encoder = nn.Sequential(
            nn.Linear(tab_features, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU()
        )
        self.fuse = nn.Sequential(nn.Linear(16 + width, width), nn.ReLU())
        self.classification_head = nn.Linear(width, n_classes)
        self.regression_head = nn.Linear(width, 1)

    def forward(self, image: torch.Tensor, tabular: torch.Tensor) -> dict[str, torch.Tensor]:
        image_features = self.image_encoder(image)
        h = self.fuse(torch.cat([image_features, self.tabular_encoder(tabular)], dim=1))
        return {
            "logits": self.classification_head(h),
            "value": self.regression_head(h).squeeze(1),
        }


def build_model() -> nn.Module:
    return ImageTabularNet()


def example_inputs(batch_size: int) -> dict[str, torch.Tensor]:
    return {"image": torch.randn(batch_size, 3, 16, 16), "tabular": torch.randn(batch_size, 12)}


def loss_fn(output: dict[str, torch.Tensor], inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    labels = torch.randint(0, 5, (output["logits"].shape[0],))
    targets = torch.randn(output["value"].shape[0])
    return F.cross_entropy(output["logits"], labels) + F.mse_loss(output["value"], targets)
