"""Pathological for its task: a diagonal linear recurrence (LRU/S4D-style,
h_t = lambda * h_{t-1} + B x_t) whose decays start at |lambda| = 0.5, asked to recall the first
of 40 tokens across 39 blanks, the copy-memory task of Hochreiter & Schmidhuber 1997 (expect:
vanishing-over-time warning from the model-level profile, reach about a quarter of the sequence).

The recurrence is a Python loop over time with per-channel decays ``sigmoid(nu)``, as such
layers are often written before anyone reaches for a parallel scan. At 0.5 per step the first
token's contribution to the last state is 0.5^39 = 2e-12 of the blanks', below float32's
resolution, so neither its value nor its gradient can train anything. ``build_near_unit`` starts the decays uniformly in [0.9, 0.999] (Orvieto
et al. 2023, "Resurrecting recurrent neural networks") and learns the task
(``bench/sequence_truth.md``: plain PyTorch, Adam and SGD with momentum, 2 seeds).
"""

import torch
import torch.nn.functional as F
from torch import nn

TOKENS, SYMBOLS = 40, 8


class DiagonalRecurrence(nn.Module):
    def __init__(self, low: float = 0.5, high: float = 0.5, width: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(SYMBOLS, width, padding_idx=0)  # blanks embed to zero
        self.B = nn.Linear(width, width, bias=False)
        decay = torch.empty(width).uniform_(low, high)
        self.nu = nn.Parameter(torch.log(decay / (1 - decay)))  # sigmoid(nu) = decay
        self.readout = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, SYMBOLS))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        decay = torch.sigmoid(self.nu)
        # gamma = sqrt(1 - lambda^2) keeps the state at the input's scale (Orvieto et al. 2023)
        u = self.B(self.embed(tokens)) * torch.sqrt(1 - decay**2)
        h = torch.zeros_like(u[:, 0])
        for t in range(u.shape[1]):
            h = decay * h + u[:, t]
        return self.readout(h)


def build_model() -> nn.Module:
    return DiagonalRecurrence()


def build_near_unit() -> nn.Module:
    return DiagonalRecurrence(low=0.9, high=0.999)


def example_inputs(batch_size: int) -> torch.Tensor:
    """A symbol from 1-7, then blanks (symbol 0)."""
    tokens = torch.zeros(batch_size, TOKENS, dtype=torch.long)
    tokens[:, 0] = torch.randint(1, SYMBOLS, (batch_size,))
    return tokens


def targets(tokens: torch.Tensor) -> torch.Tensor:
    """The label is the first token (chance: 1/7)."""
    return tokens[:, 0]


def loss_fn(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, targets(tokens))
