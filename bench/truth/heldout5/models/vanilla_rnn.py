"""Elman RNN (tanh) sequence classifier reading the whole padded sequence, classifying from the last state."""
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---- task: padded token sequences; the class is the group of the FIRST token (long-range recall) ----
TASK = "seq-cls"
PAD = 0
VOCAB = 17          # 0 = pad, 1..16 = tokens
SEQ_LEN = 12
N_CLASSES = 4
time_axis = 1


def _labels(tokens):
    return (tokens[:, 0] - 1) // 4


def example_inputs(batch_size: int):
    tokens = torch.randint(1, VOCAB, (batch_size, SEQ_LEN))
    lengths = torch.randint(6, SEQ_LEN + 1, (batch_size,))
    pad = torch.arange(SEQ_LEN)[None, :] >= lengths[:, None]
    tokens = tokens.masked_fill(pad, PAD)
    return {"tokens": tokens}


def _logits(output):
    return output["logits"] if isinstance(output, dict) else output


def loss_fn(output, inputs):
    return F.cross_entropy(_logits(output), _labels(inputs["tokens"]))


def accuracy(output, inputs):
    return (_logits(output).argmax(dim=1) == _labels(inputs["tokens"])).float().mean()


score = accuracy


def chance(inputs):
    y = _labels(inputs["tokens"])
    return torch.bincount(y, minlength=N_CLASSES).max().item() / y.shape[0]


# ---- model ----


class ElmanClassifier(nn.Module):
    def __init__(self, d_emb=32, hidden=64):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, d_emb, padding_idx=PAD)
        self.rnn = nn.RNN(d_emb, hidden, nonlinearity="tanh", batch_first=True)
        self.head = nn.Linear(hidden, N_CLASSES)

    def forward(self, tokens):
        out, h = self.rnn(self.emb(tokens))
        return self.head(h[-1])


def build_model():
    return ElmanClassifier()
