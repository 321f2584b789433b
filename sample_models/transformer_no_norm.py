"""Pathological: a GPT-style language model whose LayerNorms were left out (expect: vanishing).

Written as Hugging Face models are: every Linear and Embedding drawn from N(0, 0.02), which
assumes a LayerNorm brings each block's input back to unit scale. Without the norms the residual
stream stays at the embeddings' RMS of 0.02, every layer's input with it, and plain SGD barely
moves the loss. ``TinyGPT(norm=True)`` is the same model with pre-LN blocks and a final norm
(healthy); ``TinyGPT(tie=True)`` shares the token table with the output layer.
"""

import torch
from torch import nn
from torch.nn import functional as F

VOCAB = 256
CONTEXT = 32


class Block(nn.Module):
    def __init__(self, width: int, heads: int, norm: bool) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(width) if norm else nn.Identity()
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width) if norm else nn.Identity()
        self.up = nn.Linear(width, 4 * width)
        self.down = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (t.view(b, n, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attended.transpose(1, 2).reshape(b, n, d))
        return x + self.down(F.gelu(self.up(self.ln2(x))))


class TinyGPT(nn.Module):
    def __init__(
        self,
        width: int = 64,
        layers: int = 2,
        heads: int = 4,
        norm: bool = False,
        tie: bool = False,
    ) -> None:
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, width)
        self.positions = nn.Embedding(CONTEXT, width)
        self.blocks = nn.ModuleList(Block(width, heads, norm) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width) if norm else nn.Identity()
        self.head = nn.Linear(width, VOCAB, bias=False)
        self.apply(self._init_weights)
        if tie:  # GPT-2 and BERT share the token table with the output layer
            self.head.weight = self.tokens.weight

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.tokens(ids) + self.positions(positions)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def build_model() -> nn.Module:
    return TinyGPT()


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch_size, CONTEXT))


def loss_fn(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
