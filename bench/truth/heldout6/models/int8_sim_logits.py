"""Classifier trained 'quantisation-aware': logits are rounded to an int8 grid in forward,
so that training matches the int8 deployment path."""
from dataclasses import dataclass
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---- task: 4-way classification of 32-d vectors by a fixed random teacher ----
_TG = torch.Generator().manual_seed(1001)
_TW1 = torch.randn(32, 64, generator=_TG) / 32 ** 0.5
_TW2 = torch.randn(64, 4, generator=_TG) / 64 ** 0.5
TASK_KIND = "classification"


def example_inputs(batch_size: int):
    return torch.randn(batch_size, 32)


def targets(inputs):
    return (torch.tanh(2.0 * inputs @ _TW1) @ _TW2).argmax(-1)


# ---- model ----


@dataclass
class QConfig:
    d_in: int = 32
    hidden: int = 128
    n_classes: int = 4
    logit_scale: float = 16.0   # int8 grid step 1/16


class QuantAwareMLP(nn.Module):
    def __init__(self, cfg: QConfig = QConfig()):
        super().__init__()
        self.cfg = cfg
        self.body = nn.Sequential(
            nn.Linear(cfg.d_in, cfg.hidden), nn.GELU(),
            nn.Linear(cfg.hidden, cfg.hidden), nn.GELU(),
        )
        self.out = nn.Linear(cfg.hidden, cfg.n_classes)

    def fake_quant(self, t):
        s = self.cfg.logit_scale
        return torch.clamp(torch.round(t * s), -128, 127) / s

    def forward(self, x):
        logits = self.out(self.body(x))
        return self.fake_quant(logits)


def build_model():
    return QuantAwareMLP(QConfig())


def predict(output):
    return output


def loss_fn(output, inputs):
    return F.cross_entropy(output, targets(inputs))
