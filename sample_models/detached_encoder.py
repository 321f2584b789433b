"""Pathological: the encoder's output is detached before the head (expect: no-gradient error,
a cut graph at ``.detach()``).

Written the way the bug is usually written: the features were detached for logging, and the
detached copy went on to the head. The encoder runs and its values reach the loss, but no
gradient reaches it: its weights are bit-identical after training, and the head alone on a
random 4-dimensional projection stays far above the loss the whole model reaches
(``bench/cut_truth.py``: 200 steps of Adam or SGD with momentum, 2 seeds).
"""

import torch
from torch import nn


class Classifier(nn.Module):
    def __init__(self, features: int = 32, hidden: int = 128, code: int = 4, classes: int = 10):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, code), nn.ReLU()
        )
        self.head = nn.Linear(code, classes)
        self.logged: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x).detach()  # detached for logging, then used by mistake
        self.logged = features
        return self.head(features)


def build_model() -> nn.Module:
    return Classifier()


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 32)
