"""ReLU RNN with identity-style recurrent init (IRNN, Le et al. 2015), scaled up
by the author 'to keep a longer memory'."""
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
class IRNNConfig:
    d_in: int = 6
    hidden: int = 32
    n_classes: int = 2
    recur_scale: float = 2.0


class IRNN(nn.Module):
    def __init__(self, cfg: IRNNConfig = IRNNConfig()):
        super().__init__()
        self.cfg = cfg
        self.inp = nn.Linear(cfg.d_in, cfg.hidden)
        self.rec = nn.Linear(cfg.hidden, cfg.hidden, bias=False)
        with torch.no_grad():
            self.rec.weight.copy_(cfg.recur_scale * torch.eye(cfg.hidden))
        self.head = nn.Linear(cfg.hidden, cfg.n_classes)

    def forward(self, x):
        h = x.new_zeros(x.shape[0], self.cfg.hidden)
        for t in range(x.shape[1]):
            h = torch.relu(self.rec(h) + self.inp(x[:, t]))
        return self.head(h)


def build_model():
    return IRNN(IRNNConfig())


def predict(output):
    return output


def loss_fn(output, inputs):
    return F.cross_entropy(output, targets(inputs))
