"""MLP regressor with a custom hard-tanh autograd Function (straight-through inside [-1, 1])."""
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---- task: regress 2 outputs of a fixed random teacher MLP from a 16-d Gaussian vector ----
TASK = "vec-reg"
_g = torch.Generator().manual_seed(4321)
_TW1 = torch.randn(16, 32, generator=_g) * 1.5 / math.sqrt(16)
_TW2 = torch.randn(32, 2, generator=_g) * 1.5 / math.sqrt(32)


def _targets(x):
    return torch.tanh(x @ _TW1) @ _TW2


def example_inputs(batch_size: int):
    return torch.randn(batch_size, 16)


def _pred(output):
    return output["y"] if isinstance(output, dict) else output


def loss_fn(output, inputs):
    return F.mse_loss(_pred(output), _targets(inputs))


def r2(output, inputs):
    y = _targets(inputs)
    return 1.0 - ((_pred(output) - y) ** 2).sum() / ((y - y.mean(0)) ** 2).sum()


score = r2


def chance(inputs):
    return 0.0


# ---- model ----


class ClampSTE(torch.autograd.Function):
    """Forward: clamp to [-1, 1]. Backward: pass the gradient where the input was not clipped."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(-1.0, 1.0)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        mask = (x.abs() > 1.0).to(grad_out.dtype)
        return grad_out * mask


class HardTanhMLP(nn.Module):
    def __init__(self, d_in=16, hidden=128, d_out=2):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, d_out)

    def forward(self, x):
        h = ClampSTE.apply(self.fc1(x))
        h = ClampSTE.apply(self.fc2(h))
        return {"y": self.out(h)}


def build_model():
    return HardTanhMLP()
