"""LRU-style complex diagonal linear recurrence, h_t = lambda * h_{t-1} + gamma * B x_t, with
|lambda| initialised at 0.5 (learnable through nu_log, theta_log as in Orvieto et al. 2023).
Task: recall the signal token (1..8) placed in the first tenth of a 100-step sequence of blanks."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

SEQ_LEN = 100
N_CLASSES = 8


class LRULayer(nn.Module):
    def __init__(self, d_model=32, d_state=64, r=0.5, max_phase=2 * math.pi):
        super().__init__()
        self.nu_log = nn.Parameter(torch.full((d_state,), math.log(-math.log(r))))
        self.theta_log = nn.Parameter(torch.log(max_phase * torch.rand(d_state) + 1e-3))
        self.B_re = nn.Parameter(torch.randn(d_state, d_model) / math.sqrt(2 * d_model))
        self.B_im = nn.Parameter(torch.randn(d_state, d_model) / math.sqrt(2 * d_model))
        self.C_re = nn.Parameter(torch.randn(d_model, d_state) / math.sqrt(d_state))
        self.C_im = nn.Parameter(torch.randn(d_model, d_state) / math.sqrt(d_state))
        self.D = nn.Parameter(torch.randn(d_model))

    def forward(self, u):  # u: (B, T, d_model)
        lam_mod = torch.exp(-torch.exp(self.nu_log))
        lam = torch.polar(lam_mod, torch.exp(self.theta_log))
        gamma = torch.sqrt(1 - lam_mod ** 2)
        Bm = torch.complex(self.B_re, self.B_im) * gamma[:, None]
        Cm = torch.complex(self.C_re, self.C_im)
        Bu = torch.einsum("sd,btd->bts", Bm, u.to(torch.complex64))
        h = torch.zeros(u.size(0), lam.size(0), dtype=torch.complex64)
        ys = []
        for t in range(u.size(1)):
            h = lam * h + Bu[:, t]
            ys.append((h @ Cm.T).real)
        y = torch.stack(ys, 1)
        return y + self.D * u


class LRUClassifier(nn.Module):
    def __init__(self, d_model=32):
        super().__init__()
        self.emb = nn.Embedding(N_CLASSES + 1, d_model)
        self.lru = LRULayer(d_model)
        self.mlp = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, 64), nn.GELU(), nn.Linear(64, N_CLASSES))

    def forward(self, tokens):
        y = self.lru(self.emb(tokens))
        return self.mlp(y[:, -1])


def build_model():
    return LRUClassifier()


def example_inputs(batch_size):
    x = torch.zeros(batch_size, SEQ_LEN, dtype=torch.long)
    pos = torch.randint(0, SEQ_LEN // 10, (batch_size,))
    x[torch.arange(batch_size), pos] = torch.randint(1, N_CLASSES + 1, (batch_size,))
    return x


def loss_fn(output, inputs):
    return F.cross_entropy(output, inputs.max(1).values - 1)


def accuracy(output, inputs):
    return (output.argmax(-1) == inputs.max(1).values - 1).float().mean().item()
