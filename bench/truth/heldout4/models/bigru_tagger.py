"""Bidirectional GRU tagger: at every step t predict the token at t+4 (needs future context)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

SEQ_LEN = 50
VOCAB = 8
LOOKAHEAD = 4


def example_inputs(batch_size):
    return torch.randint(0, VOCAB, (batch_size, SEQ_LEN))


def loss_fn(output, inputs):
    T = inputs.size(1)
    return F.cross_entropy(output[:, : T - LOOKAHEAD].reshape(-1, VOCAB), inputs[:, LOOKAHEAD:].reshape(-1))


def accuracy(output, inputs):
    T = inputs.size(1)
    pred = output[:, : T - LOOKAHEAD].argmax(-1)
    return (pred == inputs[:, LOOKAHEAD:]).float().mean().item()


class BiGRUTagger(nn.Module):
    def __init__(self, emb_dim=32, hidden=64):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, emb_dim)
        self.rnn = nn.GRU(emb_dim, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, VOCAB)

    def forward(self, tokens):
        out, _ = self.rnn(self.embed(tokens))
        return self.head(out)


def build_model():
    return BiGRUTagger()
