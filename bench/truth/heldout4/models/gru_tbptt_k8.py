"""Recall-first-token classifier with truncated BPTT inside forward.

To keep memory bounded on long sequences the hidden state is detached every
`bptt` steps (a common truncated-BPTT pattern). Sequence length 80, bptt 8.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

SEQ_LEN = 80
VOCAB = 16
N_CLASSES = 8


class TBPTTGRU(nn.Module):
    def __init__(self, vocab=VOCAB, emb_dim=32, hidden=64, n_classes=N_CLASSES, bptt=8):
        super().__init__()
        self.bptt = bptt
        self.hidden = hidden
        self.embed = nn.Embedding(vocab, emb_dim)
        self.cell = nn.GRUCell(emb_dim, hidden)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, tokens):
        emb = self.embed(tokens)
        h = emb.new_zeros(emb.size(0), self.hidden)
        for t in range(emb.size(1)):
            if t > 0 and t % self.bptt == 0:
                h = h.detach()
            h = self.cell(emb[:, t], h)
        return self.head(h)


def build_model():
    return TBPTTGRU()


def example_inputs(batch_size):
    x = torch.randint(N_CLASSES, VOCAB, (batch_size, SEQ_LEN))
    x[:, 0] = torch.randint(0, N_CLASSES, (batch_size,))
    return x


def loss_fn(output, inputs):
    return F.cross_entropy(output, inputs[:, 0])


def accuracy(output, inputs):
    return (output.argmax(-1) == inputs[:, 0]).float().mean().item()
