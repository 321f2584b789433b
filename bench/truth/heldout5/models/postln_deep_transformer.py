"""12-layer Post-LN transformer encoder classifier (nn.TransformerEncoder defaults), no warm-up."""
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


@dataclass
class EncConfig:
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 12
    d_ff: int = 256
    dropout: float = 0.1


class PostLNClassifier(nn.Module):
    def __init__(self, cfg: EncConfig = EncConfig()):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, cfg.d_model, padding_idx=PAD)
        self.pos = nn.Embedding(SEQ_LEN, cfg.d_model)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.head = nn.Linear(cfg.d_model, N_CLASSES)

    def forward(self, tokens):
        pos = torch.arange(tokens.shape[1], device=tokens.device)
        h = self.tok(tokens) * math.sqrt(self.tok.embedding_dim) + self.pos(pos)
        h = self.encoder(h, src_key_padding_mask=tokens == PAD)
        return {"logits": self.head(h[:, 0])}


def build_model():
    return PostLNClassifier()
