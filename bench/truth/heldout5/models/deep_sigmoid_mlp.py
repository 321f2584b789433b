"""16-layer sigmoid MLP regressor with PyTorch default initialisation."""
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


@dataclass
class SigmoidMLPConfig:
    d_in: int = 16
    width: int = 64
    depth: int = 16
    d_out: int = 2


def build_model(cfg: SigmoidMLPConfig = SigmoidMLPConfig()):
    layers = [nn.Linear(cfg.d_in, cfg.width), nn.Sigmoid()]
    for _ in range(cfg.depth - 1):
        layers += [nn.Linear(cfg.width, cfg.width), nn.Sigmoid()]
    layers.append(nn.Linear(cfg.width, cfg.d_out))
    return nn.Sequential(*layers)
