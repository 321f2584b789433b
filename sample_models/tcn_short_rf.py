"""Pathological for its task: a causal temporal convolution net (WaveNet-style dilated Conv1d
stack) whose receptive field, 7 steps, is shorter than the dependency its label has, 24 steps
back (expect: vanishing-over-time error naming the convolutions, receptive field 7).

Tokens are embedded, run through causal convolutions (kernel 3, dilations 1 and 2, left
padding) with residual connections, and the last position is classified. The output at the
last step sees only the last 1 + 2 x (1 + 2) = 7 inputs, so the loss's gradient reaching every
earlier position is exactly zero: no amount of training can make the label depend on the token
24 steps back. ``build_wide`` (dilations 1, 2, 4, 8: 31 steps) covers it and learns
(``bench/sequence_truth.md``: plain PyTorch, Adam and SGD with momentum, 2 seeds).
"""

import torch
import torch.nn.functional as F
from torch import nn

TOKENS, SYMBOLS, LAG = 48, 8, 24


class CausalConv(nn.Conv1d):
    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__(channels, channels, kernel_size=3, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (2 * self.dilation[0], 0)))


class TCN(nn.Module):
    def __init__(self, dilations: tuple[int, ...] = (1, 2), channels: int = 48) -> None:
        super().__init__()
        self.embed = nn.Embedding(SYMBOLS, channels)
        self.convs = nn.ModuleList(CausalConv(channels, d) for d in dilations)
        self.head = nn.Linear(channels, SYMBOLS)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens).transpose(1, 2)  # (batch, channels, time)
        for conv in self.convs:
            x = x + F.relu(conv(x))
        return self.head(x[:, :, -1])


def build_model() -> nn.Module:
    return TCN()


def build_wide() -> nn.Module:
    return TCN(dilations=(1, 2, 4, 8))


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randint(0, SYMBOLS, (batch_size, TOKENS))


def targets(tokens: torch.Tensor) -> torch.Tensor:
    """The label is the token LAG steps before the last."""
    return tokens[:, -1 - LAG]


def loss_fn(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, targets(tokens))
