"""Pathological: a 32-layer graph convolutional network (Kipf & Welling 2017) that over-smooths
(expect: does not train; fix: residual connections).

Each layer propagates node features over the normalised adjacency, h <- ReLU(A_hat h W). Every
propagation averages a node with its neighbours, so after 32 of them the features of every node
in a connected graph approach the same vector (over-smoothing, Li, Han & Wu 2018): the
communities the task asks for are averaged away. Re-initialisation does not help; an identity
path around each layer, h <- h + ReLU(A_hat h W) (Li et al. 2019, DeepGCN), keeps each node's
own features and trains (``bench/fix_truth.md``). ``build_shallow`` is the 2-layer control.

The task: node classification on a fixed stochastic-block graph of 4 communities of 50 nodes.
Each batch is the whole graph with fresh noisy features (the community's mean plus unit noise),
so the inputs' first axis is the node, not a batch of graphs; the targets are the communities.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

NODES, COMMUNITIES, FEATURES, WIDTH = 200, 4, 16, 32


def _graph() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The normalised adjacency D^-1/2 (A + I) D^-1/2, each node's community, and the
    communities' mean features, drawn once from a fixed generator."""
    gen = torch.Generator().manual_seed(1234)
    community = torch.randperm(NODES, generator=gen) % COMMUNITIES
    same = community[:, None] == community[None, :]
    prob = torch.where(same, torch.tensor(0.1), torch.tensor(0.01))
    upper = torch.triu((torch.rand(NODES, NODES, generator=gen) < prob).float(), diagonal=1)
    adj = upper + upper.T + torch.eye(NODES)
    scale = adj.sum(1).rsqrt()
    means = torch.randn(COMMUNITIES, FEATURES, generator=gen)
    return scale[:, None] * adj * scale[None, :], community, means


ADJ, COMMUNITY, MEANS = _graph()


class GraphConv(nn.Module):
    def __init__(self, fan_in: int, fan_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(fan_in, fan_out)
        self.register_buffer("adj", ADJ.clone())

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.relu(self.adj @ self.linear(h))


class GCN(nn.Module):
    def __init__(self, depth: int = 32) -> None:
        super().__init__()
        self.embed = GraphConv(FEATURES, WIDTH)
        self.layers = nn.Sequential(*[GraphConv(WIDTH, WIDTH) for _ in range(depth - 1)])
        self.head = nn.Linear(WIDTH, COMMUNITIES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.embed(x)))


def build_model() -> nn.Module:
    return GCN(32)


def build_shallow() -> nn.Module:
    return GCN(2)


def example_inputs(batch_size: int) -> torch.Tensor:
    """The whole graph's features (``batch_size`` is not a node count and is ignored)."""
    return MEANS[COMMUNITY] + torch.randn(NODES, FEATURES)


def loss_fn(output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(output, COMMUNITY)
