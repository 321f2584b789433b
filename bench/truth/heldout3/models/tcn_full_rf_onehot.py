"""Causal dilated TCN on float one-hot input (batch, time, features): kernel 3,
dilations 1,2,4,8 -> receptive field 31, covering a lag of 20 (predict x[T-21] at the end)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB = 8
SEQ = 64
LAG = 20


class Block(nn.Module):
    def __init__(self, ch, k, d):
        super().__init__()
        self.pad = (k - 1) * d
        self.conv = nn.Conv1d(ch, ch, k, dilation=d)

    def forward(self, x):
        y = self.conv(F.pad(x, (self.pad, 0)))
        return x + F.gelu(y)


class DilatedTCN(nn.Module):
    def __init__(self, ch=48, k=3, dilations=(1, 2, 4, 8)):
        super().__init__()
        self.inp = nn.Conv1d(VOCAB, ch, 1)
        self.blocks = nn.Sequential(*[Block(ch, k, d) for d in dilations])
        self.head = nn.Linear(ch, VOCAB)

    def forward(self, x):  # x: (B, T, VOCAB) float
        h = self.blocks(self.inp(x.transpose(1, 2)))
        return self.head(h[..., -1])


def build_model():
    return DilatedTCN()


def example_inputs(batch_size):
    ids = torch.randint(0, VOCAB, (batch_size, SEQ))
    return F.one_hot(ids, VOCAB).float()


def _targets(x):
    return x[:, SEQ - 1 - LAG].argmax(-1)


def loss_fn(output, inputs):
    return F.cross_entropy(output, _targets(inputs))


def accuracy(output, inputs):
    return (output.argmax(-1) == _targets(inputs)).float().mean().item()
