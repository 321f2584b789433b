"""Healthy over time: an LSTM with chrono initialisation classifying 120-step sequences from its
last state (expect: nothing, not even information).

Chrono init (Tallec & Ollivier 2018) sets the forget-gate bias to log(U(1, T - 1)) and the
input-gate bias to its negative, so the cell starts out remembering over time scales up to the
sequence length T. The same LSTM with PyTorch's default biases (forget gate near 0.5) passes
less than 1e-20 of the late steps' gradient to the first steps at this length; with a forget
bias of 1 (Jozefowicz et al. 2015), about 1e-8; with chrono init, about 0.1.
"""

import torch
from torch import nn

STEPS = 120


def chrono_init(lstm: nn.LSTM, steps: int) -> None:
    """Forget-gate bias log(U(1, steps - 1)), input-gate bias its negative, other biases 0."""
    hidden = lstm.hidden_size
    with torch.no_grad():
        for name, bias in lstm.named_parameters():
            if not name.startswith("bias"):
                continue
            bias.zero_()
            if name.startswith("bias_ih"):  # gates in PyTorch's order: input, forget, cell, output
                forget = torch.log(torch.empty(hidden).uniform_(1, steps - 1))
                bias[hidden : 2 * hidden] = forget
                bias[:hidden] = -forget


class ChronoLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(16, 64, batch_first=True)
        chrono_init(self.lstm, STEPS)
        self.fc = nn.Linear(64, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


def build_model() -> nn.Module:
    return ChronoLSTM()


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, STEPS, 16)
