"""Two-layer IndRNN (ReLU, recurrent weights U(0,1)) on the marked-symbol task (80 steps)."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

SEQ_LEN = 80
N_SYM = 8
MARK_WINDOW = 10  # the marked step is one of the first 10
time_axis = 1



class IndRNNLayer(nn.Module):
    """IndRNN (Li et al. 2018): h_t = relu(W x_t + u * h_{t-1}), element-wise recurrence."""

    def __init__(self, d_in, hidden):
        super().__init__()
        self.hidden = hidden
        self.inp = nn.Linear(d_in, hidden)
        self.u = nn.Parameter(torch.rand(hidden))  # recurrent weights in (0, 1)

    def forward(self, x):
        pre = self.inp(x)
        h = x.new_zeros(x.size(0), self.hidden)
        outs = []
        for t in range(x.size(1)):
            h = F.relu(pre[:, t] + self.u * h)
            outs.append(h)
        return torch.stack(outs, dim=1)


class IndRNNClassifier(nn.Module):
    def __init__(self, hidden=64):
        super().__init__()
        self.l1 = IndRNNLayer(N_SYM + 1, hidden)
        self.l2 = IndRNNLayer(hidden, hidden)
        self.head = nn.Linear(hidden, N_SYM)

    def forward(self, x):
        return self.head(self.l2(self.l1(x))[:, -1])


def build_model():
    return IndRNNClassifier()



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

