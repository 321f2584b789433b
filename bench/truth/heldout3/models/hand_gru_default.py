"""Hand-written GRU (PyTorch equations, nn.Linear gates, default init and biases) in a Python
loop.  Task: recall the signal token (1..8) from the first tenth of a length-100 sequence of
noise tokens (9..15); dependency 90-99 steps."""
import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB, N_CLASSES, SEQ_LEN, HIDDEN = 16, 8, 100, 64


class MyGRUCell(nn.Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.x2h = nn.Linear(input_size, 3 * hidden_size)
        self.h2h = nn.Linear(hidden_size, 3 * hidden_size)

    def forward(self, x, h):
        xr, xz, xn = self.x2h(x).chunk(3, 1)
        hr, hz, hn = self.h2h(h).chunk(3, 1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1 - z) * n + z * h


class GRUReader(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, 32)
        self.cell = MyGRUCell(32, HIDDEN)
        self.fc = nn.Linear(HIDDEN, N_CLASSES)

    def forward(self, x):
        e = self.embedding(x)
        h = torch.zeros(x.size(0), HIDDEN)
        for t in range(x.size(1)):
            h = self.cell(e[:, t], h)
        return self.fc(h)


def build_model():
    return GRUReader()


def example_inputs(batch_size):
    x = torch.randint(N_CLASSES + 1, VOCAB, (batch_size, SEQ_LEN))
    p = torch.randint(0, SEQ_LEN // 10, (batch_size,))
    x[torch.arange(batch_size), p] = torch.randint(1, N_CLASSES + 1, (batch_size,))
    return x


def target(x):
    return x.masked_fill(x > N_CLASSES, 0).sum(1) - 1


def loss_fn(output, inputs):
    return F.cross_entropy(output, target(inputs))


def accuracy(output, inputs):
    return (output.argmax(1) == target(inputs)).float().mean().item()
