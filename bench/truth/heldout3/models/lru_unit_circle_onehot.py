"""LRU with eigenvalues initialised on a ring near the unit circle, |lambda| in [0.9, 0.999],
phase in [0, pi/10] (the long-range LRU init).  Float one-hot input (batch, 100, 9).
Task: recall the signal token placed in the first tenth of a sequence of blanks (dependency 90-99)."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

SEQ_LEN = 100
N_CLASSES = 8


def ring_init(n, r_min, r_max, max_phase):
    u1, u2 = torch.rand(n), torch.rand(n)
    nu_log = torch.log(-0.5 * torch.log(u1 * (r_max ** 2 - r_min ** 2) + r_min ** 2))
    theta_log = torch.log(max_phase * u2)
    return nu_log, theta_log


class LRU(nn.Module):
    def __init__(self, d_in, d_state=64, d_out=32, r_min=0.9, r_max=0.999, max_phase=math.pi / 10):
        super().__init__()
        nu_log, theta_log = ring_init(d_state, r_min, r_max, max_phase)
        self.nu_log = nn.Parameter(nu_log)
        self.theta_log = nn.Parameter(theta_log)
        lam_mod = torch.exp(-torch.exp(nu_log))
        self.gamma_log = nn.Parameter(torch.log(torch.sqrt(1 - lam_mod ** 2)))
        self.B = nn.Parameter(torch.randn(d_state, d_in, dtype=torch.cfloat) / math.sqrt(2 * d_in))
        self.C = nn.Parameter(torch.randn(d_out, d_state, dtype=torch.cfloat) / math.sqrt(d_state))

    def forward(self, x):
        lam = torch.exp(-torch.exp(self.nu_log) + 1j * torch.exp(self.theta_log))
        Bu = (x.to(torch.cfloat) @ self.B.T) * torch.exp(self.gamma_log)
        h = torch.zeros(x.shape[0], self.B.shape[0], dtype=torch.cfloat)
        for t in range(x.shape[1]):
            h = lam * h + Bu[:, t]
        return (h @ self.C.T).real  # only the final state is read out


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lru = LRU(N_CLASSES + 1)
        self.head = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, N_CLASSES))

    def forward(self, x):
        return self.head(self.lru(x))


def build_model():
    return Net()


def example_inputs(batch_size):
    ids = torch.zeros(batch_size, SEQ_LEN, dtype=torch.long)
    pos = torch.randint(0, SEQ_LEN // 10, (batch_size,))
    ids[torch.arange(batch_size), pos] = torch.randint(1, N_CLASSES + 1, (batch_size,))
    return F.one_hot(ids, N_CLASSES + 1).float()


def _targets(x):
    return x.argmax(-1).max(1).values - 1


def loss_fn(output, inputs):
    return F.cross_entropy(output, _targets(inputs))


def accuracy(output, inputs):
    return (output.argmax(-1) == _targets(inputs)).float().mean().item()
