"""Pathological: a default-init GRU over 300 steps whose label is set by the first steps
(expect: vanishing-over-time warning).

With PyTorch's default init the update gate starts near 0.5, so the gradient of the last state
with respect to the first inputs is a product of about 300 Jacobians below 1 and underflows to
exactly 0 in float32. Trained to predict a label set by its first 10 steps (400 Adam steps) it
stays at chance (45-53% held out); the same GRU with chrono gate-bias init (Tallec & Ollivier
2018) reaches 82%.
"""

import torch
from torch import nn


class GRUClassifier(nn.Module):
    def __init__(self, features: int = 8, hidden: int = 64, n_classes: int = 2) -> None:
        super().__init__()
        self.gru = nn.GRU(features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        return self.head(out[:, -1])


def build_model() -> nn.Module:
    return GRUClassifier()


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 300, 8)
