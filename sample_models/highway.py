"""A highway network (Srivastava, Greff & Schmidhuber 2015): each layer mixes a transform
h = tanh(W_H x) with its input through a gate t = sigmoid(W_T x + b_T):
y = t * h + (1 - t) * x. The gate bias b_T = -2 is set on purpose, as the paper recommends (-1 to
-3), so that every layer starts by carrying its input: the deep stack trains from the start.

The sigmoid is a gate, not a nonlinearity of a stack: a ReLU in its place would no longer mix
(t in [0, inf)); and the -2 is the design, not an init to redraw. ``gradcheck fix`` keeps both.

The task: the sign pattern of the first two inputs (4 classes), targets computed from the inputs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

WIDTH = 32
DEPTH = 12
GATE_BIAS = -2.0


class HighwayLayer(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.transform = nn.Linear(width, width)
        self.gate = nn.Linear(width, width)
        self.act = nn.Tanh()
        self.sigmoid = nn.Sigmoid()
        with torch.no_grad():
            self.gate.bias.fill_(GATE_BIAS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.sigmoid(self.gate(x))
        return t * self.act(self.transform(x)) + (1 - t) * x


class Highway(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(16, WIDTH)
        self.layers = nn.Sequential(*[HighwayLayer(WIDTH) for _ in range(DEPTH)])
        self.head = nn.Linear(WIDTH, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)))


def build_model() -> nn.Module:
    return Highway()


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 16)


def loss_fn(output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(output, (x[:, 0] > 0).long() * 2 + (x[:, 1] > 0).long())
