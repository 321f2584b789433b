"""Bag-of-embeddings classifier (mean pooling over time, no order information) for the
majority-token task: 64 tokens over 8 symbols, one symbol over-represented; predict the
most frequent symbol."""
import torch
import torch.nn as nn
import torch.nn.functional as F

SEQ_LEN = 64
VOCAB = 8


class MeanPoolBag(nn.Module):
    def __init__(self, emb_dim=32, hidden=64):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, emb_dim)
        self.mlp = nn.Sequential(nn.Linear(emb_dim, hidden), nn.ReLU(), nn.Linear(hidden, VOCAB))

    def forward(self, tokens):
        return self.mlp(self.embed(tokens).mean(dim=1))


def build_model():
    return MeanPoolBag()


def example_inputs(batch_size):
    dom = torch.randint(0, VOCAB, (batch_size, 1))
    noise = torch.randint(0, VOCAB, (batch_size, SEQ_LEN))
    return torch.where(torch.rand(batch_size, SEQ_LEN) < 0.3, dom, noise)


def targets(inputs):
    return F.one_hot(inputs, VOCAB).sum(dim=1).argmax(dim=-1)


def loss_fn(output, inputs):
    return F.cross_entropy(output, targets(inputs))


def accuracy(output, inputs):
    return (output.argmax(-1) == targets(inputs)).float().mean().item()
