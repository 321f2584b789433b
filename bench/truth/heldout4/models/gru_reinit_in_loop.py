"""Recall-first-token classifier: a hand-rolled GRUCell loop over token embeddings.

Task: position 0 holds a value token (0-7); positions 1..79 are distractors (8-15).
Predict the value token from the final hidden state.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

SEQ_LEN = 80
VOCAB = 16
N_CLASSES = 8


class RecallGRU(nn.Module):
    def __init__(self, vocab=VOCAB, emb_dim=32, hidden=64, n_classes=N_CLASSES):
        super().__init__()
        self.hidden = hidden
        self.embed = nn.Embedding(vocab, emb_dim)
        self.cell = nn.GRUCell(emb_dim, hidden)
        self.head = nn.Linear(hidden, n_classes)

    def init_hidden(self, batch_size, device):
        return torch.zeros(batch_size, self.hidden, device=device)

    def forward(self, tokens):
        emb = self.embed(tokens)
        for t in range(emb.size(1)):
            h = self.init_hidden(emb.size(0), emb.device)
            h = self.cell(emb[:, t], h)
        return self.head(h)


def build_model():
    return RecallGRU()


def example_inputs(batch_size):
    x = torch.randint(N_CLASSES, VOCAB, (batch_size, SEQ_LEN))
    x[:, 0] = torch.randint(0, N_CLASSES, (batch_size,))
    return x


def loss_fn(output, inputs):
    return F.cross_entropy(output, inputs[:, 0])


def accuracy(output, inputs):
    return (output.argmax(-1) == inputs[:, 0]).float().mean().item()
