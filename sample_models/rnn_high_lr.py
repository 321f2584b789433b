"""Pathological in training: a tanh RNN regressing a running sum over 40 steps, healthy at
initialisation, whose gradients explode after a few SGD steps at learning rate 0.1
(expect: nothing at init; with --train-steps 20 --optimizer sgd --lr 0.1, exploding error).

The recurrent weights start orthogonal (Saxe et al. 2014), a healthy init. At this learning rate
a few steps throw the net against a wall of high curvature (Pascanu et al. 2013): the weights
and the gradient norm grow by orders of magnitude while the gradient-to-weight ratios stay
moderate, which the growth-in-training rule of ``exploding`` catches. ``build_lstm`` is an LSTM
on the same task (chrono init), which stays healthy under the same training.
"""

import torch
from torch import nn

STEPS = 40


class Regressor(nn.Module):
    def __init__(self, rnn: nn.RNNBase) -> None:
        super().__init__()
        self.rnn = rnn
        self.fc = nn.Linear(rnn.hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.fc(out[:, -1]).squeeze(-1)


def build_model() -> nn.Module:
    rnn = nn.RNN(8, 64, batch_first=True)
    nn.init.orthogonal_(rnn.weight_hh_l0)
    return Regressor(rnn)


def build_lstm() -> nn.Module:
    lstm = nn.LSTM(8, 64, batch_first=True)
    hidden = lstm.hidden_size
    with torch.no_grad():  # chrono init (Tallec & Ollivier 2018), as in lstm_chrono.py
        for name, bias in lstm.named_parameters():
            if name.startswith("bias"):
                bias.zero_()
                if name.startswith("bias_ih"):
                    forget = torch.log(torch.empty(hidden).uniform_(1, STEPS - 1))
                    bias[hidden : 2 * hidden] = forget
                    bias[:hidden] = -forget
    return Regressor(lstm)


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, STEPS, 8)


def loss_fn(prediction: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean squared error against the sum of the first feature over the sequence."""
    target = x[:, :, 0].sum(dim=1) * (3 / STEPS**0.5)
    return ((prediction - target) ** 2).mean()
