"""TCN: 7 residual causal conv layers, kernel 2, dilations 1..64 (receptive field 128),
reading the last step. Recall-first-token task, length 80."""
import torch
import torch.nn as nn
import torch.nn.functional as F

SEQ_LEN = 80
VOCAB = 16
N_CLASSES = 8


class TemporalBlock(nn.Module):
    def __init__(self, channels, dilation, k=2):
        super().__init__()
        self.pad = (k - 1) * dilation
        self.conv = nn.Conv1d(channels, channels, k, dilation=dilation)
        self.proj = nn.Conv1d(channels, channels, 1)

    def forward(self, x):
        y = F.relu(self.conv(F.pad(x, (self.pad, 0))))
        return x + self.proj(y)


class TCN(nn.Module):
    def __init__(self, channels=32, levels=7):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, channels)
        self.blocks = nn.Sequential(*[TemporalBlock(channels, 2 ** i) for i in range(levels)])
        self.head = nn.Linear(channels, N_CLASSES)

    def forward(self, tokens):
        h = self.blocks(self.embed(tokens).transpose(1, 2))
        return self.head(h[:, :, -1])


def build_model():
    return TCN()


def example_inputs(batch_size):
    x = torch.randint(N_CLASSES, VOCAB, (batch_size, SEQ_LEN))
    x[:, 0] = torch.randint(0, N_CLASSES, (batch_size,))
    return x


def loss_fn(output, inputs):
    return F.cross_entropy(output, inputs[:, 0])


def accuracy(output, inputs):
    return (output.argmax(-1) == inputs[:, 0]).float().mean().item()
