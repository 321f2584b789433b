"""Causal dilated Conv1d classifier (kernel 3, dilations 1, 2, 4; receptive field 15)
reading the output at the last time step. Recall-first-token task, length 80."""
import torch
import torch.nn as nn
import torch.nn.functional as F

SEQ_LEN = 80
VOCAB = 16
N_CLASSES = 8


class CausalConv(nn.Module):
    def __init__(self, c_in, c_out, k, dilation):
        super().__init__()
        self.pad = (k - 1) * dilation
        self.conv = nn.Conv1d(c_in, c_out, k, dilation=dilation)

    def forward(self, x):
        return self.conv(F.pad(x, (self.pad, 0)))


class ConvClassifier(nn.Module):
    def __init__(self, channels=48):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, channels)
        self.blocks = nn.ModuleList([CausalConv(channels, channels, 3, d) for d in (1, 2, 4)])
        self.head = nn.Linear(channels, N_CLASSES)

    def forward(self, tokens):
        h = self.embed(tokens).transpose(1, 2)
        for conv in self.blocks:
            h = h + F.relu(conv(h))
        return self.head(h[:, :, -1])


def build_model():
    return ConvClassifier()


def example_inputs(batch_size):
    x = torch.randint(N_CLASSES, VOCAB, (batch_size, SEQ_LEN))
    x[:, 0] = torch.randint(0, N_CLASSES, (batch_size,))
    return x


def loss_fn(output, inputs):
    return F.cross_entropy(output, inputs[:, 0])


def accuracy(output, inputs):
    return (output.argmax(-1) == inputs[:, 0]).float().mean().item()
