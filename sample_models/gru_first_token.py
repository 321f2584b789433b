"""Pathological for its task: a default-init GRU over 60 tokens whose label is the first token
(expect: vanishing-over-time warning, the gradient reaching back fewer than half the steps).

An embedding, a one-layer GRU and a linear head, written as a sequence classifier usually is.
The update gates start near 0.5, so the last state's gradient with respect to the first tokens
is a product of about 60 Jacobians below 1: more than 1e-3 of it reaches back only about a
quarter of the sequence. Trained on its own task (predict token 0 of 60, 8 symbols; plain
PyTorch, Adam and SGD with momentum, 2 seeds) it stays at chance, while the same model learns
the task at 10 tokens (``bench/gru_first_token.md``).
"""

import torch
import torch.nn.functional as F
from torch import nn

TOKENS, SYMBOLS = 60, 8


class FirstTokenGRU(nn.Module):
    def __init__(self, symbols: int = SYMBOLS, embed: int = 16, hidden: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(symbols, embed)
        self.gru = nn.GRU(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, symbols)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.embed(tokens))
        return self.head(out[:, -1])


def build_model() -> nn.Module:
    return FirstTokenGRU()


def example_inputs(batch_size: int, tokens: int = TOKENS) -> torch.Tensor:
    return torch.randint(0, SYMBOLS, (batch_size, tokens))


def loss_fn(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """The label is the first token."""
    return F.cross_entropy(logits, tokens[:, 0])
