"""Causal dilated TCN (kernel 2, dilations 1,2,4 -> receptive field 8) on a lag task:
predict, at the last step, the token seen 20 steps earlier (x[T-21]).  All tokens random."""
import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB = 8
T = 64
LAG = 20


class CausalConv1d(nn.Conv1d):
    def __init__(self, cin, cout, k, dilation):
        super().__init__(cin, cout, k, dilation=dilation)
        self.left = (k - 1) * dilation

    def forward(self, x):
        return super().forward(F.pad(x, (self.left, 0)))


class TCN(nn.Module):
    def __init__(self, channels=48, kernel=2, dilations=(1, 2, 4)):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, channels)
        self.convs = nn.ModuleList([CausalConv1d(channels, channels, kernel, d) for d in dilations])
        self.head = nn.Linear(channels, VOCAB)

    def forward(self, tokens):
        h = self.emb(tokens).transpose(1, 2)  # (B, C, T)
        for conv in self.convs:
            h = h + F.relu(conv(h))
        return self.head(h[:, :, -1])


def build_model():
    return TCN()


def example_inputs(batch_size):
    return torch.randint(0, VOCAB, (batch_size, T))


def loss_fn(output, inputs):
    return F.cross_entropy(output, inputs[:, T - 1 - LAG])


def accuracy(output, inputs):
    return (output.argmax(-1) == inputs[:, T - 1 - LAG]).float().mean().item()
