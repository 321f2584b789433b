"""Regressor with a Switch-style mixture-of-experts layer: top-1 routing, the chosen
expert's output scaled by its router probability, plus a load-balancing loss."""
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---- task: regression of a smooth fixed teacher function of 16 inputs ----
_TG = torch.Generator().manual_seed(1005)
_TW = torch.randn(16, 8, generator=_TG) * (1.5 / 16 ** 0.5)
_TV = torch.randn(8, generator=_TG) / 8 ** 0.5
TASK_KIND = "regression"


def example_inputs(batch_size: int):
    return torch.randn(batch_size, 16)


def targets(inputs):
    return torch.tanh(inputs @ _TW) @ _TV


# ---- model ----
class SwitchFFN(nn.Module):
    def __init__(self, d, n_experts=4, hidden=64):
        super().__init__()
        self.router = nn.Linear(d, n_experts)
        self.experts = nn.ModuleList(
            [nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, d)) for _ in range(n_experts)]
        )

    def forward(self, x):
        probs = self.router(x).softmax(-1)
        gate, idx = probs.max(-1)
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            sel = idx == e
            if sel.any():
                out[sel] = expert(x[sel]) * gate[sel, None]
        frac = F.one_hot(idx, len(self.experts)).float().mean(0)
        aux = len(self.experts) * (frac * probs.mean(0)).sum()
        return out, aux


class MoERegressor(nn.Module):
    def __init__(self, d_in=16, d=32):
        super().__init__()
        self.inp = nn.Linear(d_in, d)
        self.norm = nn.LayerNorm(d)
        self.moe = SwitchFFN(d)
        self.out = nn.Linear(d, 1)

    def forward(self, x):
        h = self.inp(x)
        m, aux = self.moe(self.norm(h))
        return {"pred": self.out(h + m).squeeze(-1), "aux_loss": aux}


def build_model():
    return MoERegressor()


def predict(output):
    return output["pred"]


def loss_fn(output, inputs):
    return F.mse_loss(output["pred"], targets(inputs)) + 0.01 * output["aux_loss"]
