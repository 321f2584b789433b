"""An embedding + 2-layer LSTM sequence classifier with PyTorch's default init, 50 tokens
(expect: vanishing-over-time warning: the gradient reaches back 19 of 50 steps, so it learns a
recent-context task but not one that depends on its first tokens; bench/rnn_learnability/)."""

import torch
from torch import nn


class LSTMClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(1000, 64)
        self.lstm = nn.LSTM(64, 128, num_layers=2, batch_first=True)
        self.fc = nn.Linear(128, 5)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embed(tokens))
        return self.fc(out[:, -1])


def build_model() -> nn.Module:
    return LSTMClassifier()


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randint(0, 1000, (batch_size, 50))
