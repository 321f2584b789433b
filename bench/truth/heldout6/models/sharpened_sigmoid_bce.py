"""Binary sequence classifier (MLP on the flattened sequence) that outputs 'sharpened'
probabilities sigmoid(k * z) with k = 100, trained with BCE on the probabilities."""
from dataclasses import dataclass
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---- task: sign of a weighted sum over all 24 steps of a 6-d sequence ----
_TG = torch.Generator().manual_seed(1002)
_TW = torch.randn(6, generator=_TG)
TASK_KIND = "classification"
time_axis = 1


def example_inputs(batch_size: int):
    return torch.randn(batch_size, 24, 6)


def targets(inputs):
    return ((inputs @ _TW).sum(1) > 0).long()


# ---- model ----


@dataclass
class SharpConfig:
    seq_len: int = 24
    d_in: int = 6
    hidden: int = 64
    sharpness: float = 100.0


class SharpClassifier(nn.Module):
    def __init__(self, cfg: SharpConfig = SharpConfig()):
        super().__init__()
        self.cfg = cfg
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(cfg.seq_len * cfg.d_in, cfg.hidden), nn.ReLU(),
            nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU(),
            nn.Linear(cfg.hidden, 1),
        )

    def forward(self, x):
        return {"prob": torch.sigmoid(self.cfg.sharpness * self.net(x)).squeeze(-1)}


def build_model():
    return SharpClassifier(SharpConfig())


def predict(output):
    p = output["prob"]
    return torch.stack([1 - p, p], -1)


def loss_fn(output, inputs):
    return F.binary_cross_entropy(output["prob"], targets(inputs).float())
