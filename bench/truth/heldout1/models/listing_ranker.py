"""Listing classifier over a bag of title tokens and numeric features; dict in, dict out."""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class RankerConfig:
    vocab_size: int = 200
    max_len: int = 12
    tok_dim: int = 32
    num_features: int = 6
    hidden: int = 64
    n_classes: int = 4
    pad_id: int = 0


class ListingClassifier(nn.Module):
    def __init__(self, cfg: RankerConfig = RankerConfig()):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.tok_dim, padding_idx=cfg.pad_id)
        self.num_proj = nn.Sequential(nn.Linear(cfg.num_features, cfg.hidden), nn.ReLU())
        self.fuse = nn.Sequential(nn.Linear(cfg.tok_dim + cfg.hidden, cfg.hidden), nn.ReLU())
        self.cls = nn.Linear(cfg.hidden, cfg.n_classes)

    def forward(self, tokens, numeric, mask):
        m = mask.unsqueeze(-1).to(numeric.dtype)
        bag = (self.tok_emb(tokens) * m).sum(1) / m.sum(1).clamp(min=1.0)
        h = self.fuse(torch.cat([bag, self.num_proj(numeric)], dim=-1))
        return {"logits": self.cls(h), "embedding": h}


_g = torch.Generator().manual_seed(1414)
_TOK = torch.randn(200, 4, generator=_g)
_TOK[0] = 0.0
_NUM = torch.randn(6, 4, generator=_g)


def target_fn(inputs):
    m = inputs["mask"].unsqueeze(-1).float()
    tok = _TOK.to(m.device)[inputs["tokens"]]
    bag = (tok * m).sum(1) / m.sum(1).clamp(min=1.0)
    return (2.0 * bag + torch.tanh(inputs["numeric"] @ _NUM.to(m.device))).argmax(-1)


def build_model():
    return ListingClassifier(RankerConfig())


def example_inputs(batch_size: int):
    lengths = torch.randint(3, 13, (batch_size,))
    mask = torch.arange(12).unsqueeze(0) < lengths.unsqueeze(1)
    tokens = torch.randint(1, 200, (batch_size, 12)) * mask
    return {"tokens": tokens, "numeric": torch.randn(batch_size, 6), "mask": mask}


def loss_fn(output, inputs):
    return F.cross_entropy(output["logits"], target_fn(inputs))
