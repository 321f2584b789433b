"""Attention-pooling classifier (no recurrence) on the marked-symbol task (80 steps).
Softmax taken over the last dimension of the (batch, time, 1) score tensor."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

SEQ_LEN = 80
N_SYM = 8
MARK_WINDOW = 10  # the marked step is one of the first 10
time_axis = 1



class AttentionPoolClassifier(nn.Module):
    """No recurrence: per-step scores, softmax attention pooling over time, MLP head."""

    def __init__(self, d_in=N_SYM + 1, hidden=64):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.value = nn.Linear(d_in, hidden)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, N_SYM))

    def forward(self, x):
        scores = self.score(x)                   # (batch, time, 1)
        weights = torch.softmax(scores, dim=-1)
        pooled = (weights * self.value(x)).sum(dim=1)
        return self.head(pooled)


def build_model():
    return AttentionPoolClassifier()



def example_inputs(batch_size):
    sym = torch.randint(0, N_SYM, (batch_size, SEQ_LEN))
    x = F.one_hot(sym, N_SYM).float()
    marker = torch.zeros(batch_size, SEQ_LEN, 1)
    pos = torch.randint(0, MARK_WINDOW, (batch_size,))
    marker[torch.arange(batch_size), pos, 0] = 1.0
    return torch.cat([x, marker], dim=-1)


def targets(inputs):
    pos = inputs[..., N_SYM].argmax(dim=1)
    return inputs[torch.arange(inputs.size(0)), pos, :N_SYM].argmax(dim=-1)


def loss_fn(output, inputs):
    return F.cross_entropy(output, targets(inputs))


def accuracy(output, inputs):
    return (output.argmax(-1) == targets(inputs)).float().mean().item()

