"""A 24-layer post-LN ``nn.TransformerEncoder`` classifier over a sequence of vectors.

Each encoder layer's attention output projection is ``NonDynamicallyQuantizableLinear``, a
private subclass of ``nn.Linear``: the terminal shows it as ``Linear``.
"""

import torch
from torch import nn

WIDTH = 32
LENGTH = 8


class Classifier(nn.Module):
    def __init__(self, layers: int = 24) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(WIDTH, 2, 2 * WIDTH, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(WIDTH, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x).mean(dim=1))


def build_model() -> nn.Module:
    return Classifier()


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, LENGTH, WIDTH)
