"""Small causal (GPT-style, pre-norm) transformer: 2 layers, d_model 64, 4 heads, learned
positions, classification from the last position.
Task: recall the signal token from the first tenth of a length-100 sequence of noise tokens."""
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class TConfig:
    vocab: int = 16
    n_classes: int = 8
    seq_len: int = 100
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    extra: dict = field(default_factory=lambda: {"ff_mult": 2})


class CausalTransformer(nn.Module):
    def __init__(self, cfg: TConfig = None):
        super().__init__()
        cfg = cfg or TConfig()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab, cfg.d_model)
        self.pos = nn.Parameter(torch.randn(1, cfg.seq_len, cfg.d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, cfg.extra["ff_mult"] * cfg.d_model,
                                           dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.n_classes)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(cfg.seq_len), persistent=False)

    def forward(self, idx):
        T = idx.size(1)
        x = self.tok(idx) + self.pos[:, :T]
        x = self.blocks(x, mask=self.mask[:T, :T], is_causal=True)
        return self.head(self.ln_f(x[:, -1]))


def build_model():
    return CausalTransformer()


def example_inputs(batch_size):
    T = TConfig.seq_len
    x = torch.randint(9, 16, (batch_size, T))
    pos = torch.randint(0, T // 10, (batch_size,))
    x[torch.arange(batch_size), pos] = torch.randint(1, 9, (batch_size,))
    return x


def _y(x):
    return torch.where(x <= 8, x, torch.zeros_like(x)).sum(1) - 1


def loss_fn(output, inputs):
    return F.cross_entropy(output, _y(inputs))


def accuracy(output, inputs):
    return (output.argmax(-1) == _y(inputs)).float().mean().item()
