"""Small models the tests build in several files."""

from __future__ import annotations

import torch
from torch import nn


class LastStep(nn.Module):
    """A recurrent module and a linear head on its last output step (either time layout)."""

    def __init__(self, rnn: nn.RNNBase, out: int = 4) -> None:
        super().__init__()
        self.rnn = rnn
        self.fc = nn.Linear(rnn.hidden_size * (2 if rnn.bidirectional else 1), out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = self.rnn(x)[0]
        return self.fc(output[:, -1] if self.rnn.batch_first else output[-1])
