"""Pathological over time: a vanilla tanh RNN classifying 120-step sequences from its last state
(expect: vanishing-over-time error).

With PyTorch's default init, U(+-1/sqrt(hidden)), the recurrent Jacobians have norms well below 1,
so the gradient from the last state back to step t shrinks geometrically (Bengio et al. 1994;
Pascanu et al. 2013): the first steps get none at all (it underflows float32). The per-layer
rules see nothing wrong: there are only two weight layers.
"""

import torch
from torch import nn

STEPS = 120


class VanillaRNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(16, 64, batch_first=True)
        self.fc = nn.Linear(64, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


def build_model() -> nn.Module:
    return VanillaRNN()


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, STEPS, 16)
