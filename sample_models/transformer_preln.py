"""Healthy: a pre-LN transformer language model on token ids (expect: nothing).

Pre-LN (norm_first=True) keeps gradients well-scaled at initialisation (Xiong et al. 2020).
The loss is next-token cross-entropy, given by ``loss_fn``.
"""

import torch
from torch import nn

VOCAB = 1000
CONTEXT = 64


class TinyLM(nn.Module):
    def __init__(self, layers: int = 4, width: int = 128) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, width)
        self.pos = nn.Parameter(torch.zeros(1, CONTEXT, width))
        layer = nn.TransformerEncoderLayer(
            width, 4, 4 * width, dropout=0.1, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(
            layer, layers, norm=nn.LayerNorm(width), enable_nested_tensor=False
        )
        self.head = nn.Linear(width, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n = tokens.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(n)
        h = self.embed(tokens) + self.pos[:, :n]
        return self.head(self.encoder(h, mask=mask, is_causal=True))


def build_model() -> nn.Module:
    return TinyLM()


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch_size, CONTEXT))


def loss_fn(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), tokens[:, 1:].reshape(-1))
