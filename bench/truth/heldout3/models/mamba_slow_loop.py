"""Mamba-style selective scan written as a Python loop over time, with the standard Mamba
initialisation: dt log-uniform in [0.001, 0.1], A = -(1..16) (S4D-real).  Slow channels keep
information over hundreds of steps.  Output is a dict {"logits": ...}.
Task: recall the signal token from the first tenth of a length-100 sequence of noise tokens."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB, N_CLASSES, T = 16, 8, 100


class MambaBlock(nn.Module):
    def __init__(self, d_model=32, d_state=16, dt_min=1e-3, dt_max=1e-1):
        super().__init__()
        self.d_state = d_state
        self.in_proj = nn.Linear(d_model, 2 * d_model)
        self.x_proj = nn.Linear(d_model, 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(d_model, d_model)
        dt = torch.exp(torch.rand(d_model) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_model, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(d_model))
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(self, x):
        b, L, d = x.shape
        u, z = self.in_proj(x).chunk(2, -1)
        u = F.silu(u)
        Bs, Cs = self.x_proj(u).split(self.d_state, -1)
        delta = F.softplus(self.dt_proj(u))
        A = -torch.exp(self.A_log)
        h = x.new_zeros(b, d, self.d_state)
        for t in range(L):
            dA = torch.exp(delta[:, t, :, None] * A)
            dBu = delta[:, t, :, None] * Bs[:, t, None, :] * u[:, t, :, None]
            h = dA * h + dBu
        y = (h * Cs[:, -1, None, :]).sum(-1) + self.D * u[:, -1]
        return self.out_proj(y * F.silu(z[:, -1]))


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 32)
        self.norm = nn.LayerNorm(32)
        self.block = MambaBlock()
        self.lm_head = nn.Linear(32, N_CLASSES)

    def forward(self, input_ids):
        return {"logits": self.lm_head(self.block(self.norm(self.embed(input_ids))))}


def build_model():
    return Model()


def example_inputs(batch_size):
    ids = torch.randint(9, VOCAB, (batch_size, T))
    pos = torch.randint(0, T // 10, (batch_size,))
    ids[torch.arange(batch_size), pos] = torch.randint(1, N_CLASSES + 1, (batch_size,))
    return {"input_ids": ids}


def _labels(inputs):
    ids = inputs["input_ids"]
    return (ids * (ids <= N_CLASSES)).sum(1) - 1


def loss_fn(output, inputs):
    return F.cross_entropy(output["logits"], _labels(inputs))


def accuracy(output, inputs):
    return (output["logits"].argmax(-1) == _labels(inputs)).float().mean().item()
