"""Plain nn.GRU (cuDNN-style built-in, default init) reading a length-50 sequence of noise
tokens; the signal token appears 3-10 steps before the end.  Short dependency: should learn."""
import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB, N_CLASSES, SEQ_LEN = 16, 8, 50


class GRUClassifier(nn.Module):
    def __init__(self, emb=32, hidden=64):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, emb)
        self.gru = nn.GRU(emb, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, N_CLASSES)

    def forward(self, x):
        out, _ = self.gru(self.emb(x))
        return self.fc(out[:, -1])


def build_model():
    return GRUClassifier()


def example_inputs(batch_size):
    x = torch.randint(N_CLASSES + 1, VOCAB, (batch_size, SEQ_LEN))
    p = torch.randint(SEQ_LEN - 11, SEQ_LEN - 3, (batch_size,))
    x[torch.arange(batch_size), p] = torch.randint(1, N_CLASSES + 1, (batch_size,))
    return x


def target(x):
    return x.masked_fill(x > N_CLASSES, 0).sum(1) - 1


def loss_fn(output, inputs):
    return F.cross_entropy(output, target(inputs))


def accuracy(output, inputs):
    return (output.argmax(1) == target(inputs)).float().mean().item()
