"""Truncated-BPTT GRU on one-hot float inputs, detach every 50 steps, but the dependency
is only 15-24 steps and lies inside the last chunk (steps 50..99), so k > dependency.

Inputs are a dict {"x": (batch, 100, 9) one-hot floats}; channel 0 is a blank.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

SEQ_LEN = 100
N_CLASSES = 8
TBPTT_K = 50


class ChunkedGRU(nn.Module):
    def __init__(self, in_dim=N_CLASSES + 1, hidden=64, k=TBPTT_K):
        super().__init__()
        self.k = k
        self.hidden = hidden
        self.cell = nn.GRUCell(in_dim, hidden)
        self.out = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, N_CLASSES))

    def forward(self, x):
        h = torch.zeros(x.size(0), self.hidden)
        for t in range(x.size(1)):
            if t % self.k == 0:
                h = h.detach()
            h = self.cell(x[:, t, :], h)
        return self.out(h)


def build_model():
    return ChunkedGRU()


def example_inputs(batch_size):
    ids = torch.zeros(batch_size, SEQ_LEN, dtype=torch.long)
    pos = torch.randint(SEQ_LEN - 25, SEQ_LEN - 15, (batch_size,))  # steps 75..84
    ids[torch.arange(batch_size), pos] = torch.randint(1, N_CLASSES + 1, (batch_size,))
    return {"x": F.one_hot(ids, N_CLASSES + 1).float()}


def _targets(inputs):
    ids = inputs["x"].argmax(-1)
    return ids.max(dim=1).values - 1


def loss_fn(output, inputs):
    return F.cross_entropy(output, _targets(inputs))


def accuracy(output, inputs):
    return (output.argmax(-1) == _targets(inputs)).float().mean().item()
