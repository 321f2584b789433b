"""Control for task E: a standard healthy architecture."""
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
class Regressor(nn.Module):
    def __init__(self, d_in=16, hidden=64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d_in, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, x):
        return self.net(x).squeeze(-1)


def build_model():
    return Regressor()


def predict(output):
    return output


def loss_fn(output, inputs):
    return F.mse_loss(output, targets(inputs))
