"""minGRU classifier (hidden 64) on the marked-symbol task (80 steps)."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

SEQ_LEN = 80
N_SYM = 8
MARK_WINDOW = 10  # the marked step is one of the first 10
time_axis = 1



class MinGRU(nn.Module):
    """minGRU (Feng et al. 2024): gates depend on the input only.
    h_t = (1 - z_t) * h_{t-1} + z_t * h~_t"""

    def __init__(self, d_in, hidden, gate_bias=None):
        super().__init__()
        self.hidden = hidden
        self.to_z = nn.Linear(d_in, hidden)
        self.to_h = nn.Linear(d_in, hidden)
        if gate_bias is not None:
            nn.init.constant_(self.to_z.bias, gate_bias)

    def forward(self, x):
        z = torch.sigmoid(self.to_z(x))
        h_tilde = self.to_h(x)
        h = x.new_zeros(x.size(0), self.hidden)
        outs = []
        for t in range(x.size(1)):
            h = (1 - z[:, t]) * h + z[:, t] * h_tilde[:, t]
            outs.append(h)
        return torch.stack(outs, dim=1)


class MinGRUClassifier(nn.Module):
    def __init__(self, hidden=64):
        super().__init__()
        self.rnn = MinGRU(N_SYM + 1, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, N_SYM))

    def forward(self, x):
        return self.head(self.norm(self.rnn(x)[:, -1]))


def build_model():
    return MinGRUClassifier()



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

