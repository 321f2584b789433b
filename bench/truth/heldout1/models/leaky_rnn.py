"""Hand-written Elman recurrence over a multichannel sequence, regressing a long-range statistic."""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class RNNConfig:
    input_size: int = 4
    hidden_size: int = 24
    steps: int = 20
    out_dim: int = 2


class ElmanCell(nn.Module):
    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.inp = nn.Linear(input_size, hidden_size)
        self.rec = nn.Linear(hidden_size, hidden_size, bias=False)
        nn.init.orthogonal_(self.rec.weight)

    def forward(self, x_t, h):
        return torch.tanh(self.inp(x_t) + self.rec(h))


class SequenceModel(nn.Module):
    def __init__(self, cfg: RNNConfig = RNNConfig()):
        super().__init__()
        self.cfg = cfg
        self.cell = ElmanCell(cfg.input_size, cfg.hidden_size)
        self.head = nn.Sequential(
            nn.Linear(cfg.hidden_size + cfg.input_size, 64), nn.Tanh(), nn.Linear(64, cfg.out_dim)
        )

    def forward(self, x):
        b, t, _ = x.shape
        h = x.new_zeros(b, self.cfg.hidden_size)
        for i in range(t):
            # truncated BPTT: keep the graph one step long to bound memory
            h = self.cell(x[:, i], h).detach()
        return self.head(torch.cat([h, x[:, -1]], dim=-1))


# ---- synthetic task: decayed sums of products of channels over the whole sequence ----------
def target_fn(x):
    t = x.shape[1]
    w = 0.9 ** torch.arange(t - 1, -1, -1, device=x.device, dtype=x.dtype)
    a = (x[:, :, 0] * w).sum(1) / 3.0
    c = (x[:, :, 1] * x[:, :, 2] * w).sum(1) / 3.0
    return torch.stack([a, c], dim=-1)


def build_model():
    return SequenceModel(RNNConfig())


def example_inputs(batch_size: int):
    return torch.randn(batch_size, 20, 4)


def loss_fn(output, inputs):
    return F.mse_loss(output, target_fn(inputs))
