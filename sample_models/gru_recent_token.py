"""Healthy for its task, though it warns at initialisation: the default-init GRU of
``gru_first_token.py`` over 60 tokens, whose label is the token 3 steps before the last (expect:
vanishing-over-time warning, reach about a quarter of the sequence; with ``--learn 200`` the
learning probe sees it learn and the warning becomes information).

The gradient of its last state reaches back fewer than half of the 60 steps, exactly as in
``gru_first_token.py``: at initialisation the two are the same model. Only the task differs, and
this one needs 4 steps of memory, so it learns with Adam and with SGD with momentum
(``bench/sequence_truth.md``). Whether a task needs the steps a gradient does not reach is not
something gradients at initialisation show; training on the task does.
"""

import torch
import torch.nn.functional as F
from torch import nn

TOKENS, SYMBOLS, LAG = 60, 8, 3


class RecentTokenGRU(nn.Module):
    def __init__(self, symbols: int = SYMBOLS, embed: int = 16, hidden: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(symbols, embed)
        self.gru = nn.GRU(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, symbols)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.embed(tokens))
        return self.head(out[:, -1])


def build_model() -> nn.Module:
    return RecentTokenGRU()


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randint(0, SYMBOLS, (batch_size, TOKENS))


def targets(tokens: torch.Tensor) -> torch.Tensor:
    """The label is the token LAG steps before the last."""
    return tokens[:, -1 - LAG]


def loss_fn(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, targets(tokens))
