"""Control for seq-cls: embedding + 1-layer GRU, classify from the final hidden state."""
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


class GRUClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 32, padding_idx=PAD)
        self.rnn = nn.GRU(32, 64, batch_first=True)
        self.head = nn.Linear(64, N_CLASSES)

    def forward(self, tokens):
        _, h = self.rnn(self.emb(tokens))
        return self.head(h[-1])


def build_model():
    return GRUClassifier()
