"""2-layer pre-LN transformer; class logits come from the TIED input embedding of 4 label tokens (verbalizer)."""
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
class TinyLMConfig:
    vocab: int = VOCAB + N_CLASSES      # data tokens + one label token per class
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    max_len: int = SEQ_LEN


class TiedVerbalizer(nn.Module):
    def __init__(self, cfg: TinyLMConfig = TinyLMConfig()):
        super().__init__()
        self.tok = nn.Embedding(cfg.vocab, cfg.d_model, padding_idx=PAD)
        self.pos = nn.Parameter(torch.randn(1, cfg.max_len, cfg.d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, 4 * cfg.d_model, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.register_buffer("label_ids", torch.arange(VOCAB, VOCAB + N_CLASSES), persistent=False)

    def forward(self, tokens):
        pad = tokens == PAD
        h = self.encoder(self.tok(tokens) + self.pos[:, : tokens.shape[1]], src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).float()
        pooled = self.norm((h * keep).sum(1) / keep.sum(1))
        return {"logits": pooled @ self.tok(self.label_ids).t()}   # weight tying with the label tokens


def build_model():
    return TiedVerbalizer()
