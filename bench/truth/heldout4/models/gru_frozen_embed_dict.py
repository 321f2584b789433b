"""GRU recall classifier configured by a dataclass, taking a dict batch and
returning a dict. The embedding table is treated as fixed: the lookup runs under
torch.no_grad() (so the embedding never trains)."""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

SEQ_LEN = 80
VOCAB = 16
N_CLASSES = 8


@dataclass
class GRUConfig:
    vocab: int = VOCAB
    emb_dim: int = 32
    hidden: int = 64
    n_classes: int = N_CLASSES


class FrozenEmbedGRU(nn.Module):
    def __init__(self, cfg: GRUConfig = GRUConfig()):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.emb_dim)
        self.gru = nn.GRU(cfg.emb_dim, cfg.hidden, batch_first=True)
        self.head = nn.Linear(cfg.hidden, cfg.n_classes)

    def forward(self, tokens, mask):
        with torch.no_grad():
            emb = self.embed(tokens)
        emb = emb * mask.unsqueeze(-1)
        out, h = self.gru(emb)
        return {"logits": self.head(h[-1]), "states": out}


def build_model():
    return FrozenEmbedGRU(GRUConfig())


def example_inputs(batch_size):
    x = torch.randint(N_CLASSES, VOCAB, (batch_size, SEQ_LEN))
    x[:, 0] = torch.randint(0, N_CLASSES, (batch_size,))
    return {"tokens": x, "mask": torch.ones(batch_size, SEQ_LEN)}


def loss_fn(output, inputs):
    return F.cross_entropy(output["logits"], inputs["tokens"][:, 0])


def accuracy(output, inputs):
    return (output["logits"].argmax(-1) == inputs["tokens"][:, 0]).float().mean().item()
