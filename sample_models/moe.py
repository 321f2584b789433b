"""Healthy: a mixture-of-experts layer with 64 experts and top-1 routing (expect: info only).

16 tokens per step (batch 2 x 8) cannot reach 64 experts: with a balanced router about
64 (1 - 1/64)^48 = 30 experts get no token in 3 steps by chance alone. Experts that were not
routed in the measured batches are information ("raise --batch-size"), not a defect.
"""

import torch
import torch.nn.functional as F
from torch import nn


class Expert(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden)
        self.w2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.gelu(self.w1(x)))


class MoE(nn.Module):
    def __init__(self, dim: int, n_experts: int = 64, hidden: int = 64) -> None:
        super().__init__()
        self.router = nn.Linear(dim, n_experts)
        self.experts = nn.ModuleList(Expert(dim, hidden) for _ in range(n_experts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        gates = F.softmax(self.router(flat), dim=-1)
        weight, choice = gates.max(dim=-1)
        out = torch.zeros_like(flat)
        for e in choice.unique().tolist():
            rows = choice == e
            out[rows] = weight[rows, None] * self.experts[e](flat[rows])
        return out.reshape(x.shape)


class MoEModel(nn.Module):
    def __init__(self, vocab: int = 256, dim: int = 32, n_experts: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.norm = nn.LayerNorm(dim)
        self.moe = MoE(dim, n_experts)
        self.head = nn.Linear(dim, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        x = x + self.moe(self.norm(x))
        return self.head(x)


def build_model() -> nn.Module:
    return MoEModel()


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randint(0, 256, (2, 8))
