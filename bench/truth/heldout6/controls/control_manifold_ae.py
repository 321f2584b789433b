"""Control for task F: a standard healthy architecture."""
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---- task: reconstruct 32-d points lying near a 6-d curved manifold ----
_TG = torch.Generator().manual_seed(1006)
_TA = torch.randn(6, 32, generator=_TG) * (1.5 / 6 ** 0.5)
TASK_KIND = "regression"


def example_inputs(batch_size: int):
    z = torch.randn(batch_size, 6)
    return torch.tanh(z @ _TA) + 0.05 * torch.randn(batch_size, 32)


def targets(inputs):
    return inputs


# ---- model ----
class AutoEncoder(nn.Module):
    def __init__(self, d=32, hidden=64, code=8):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, code))
        self.decoder = nn.Sequential(nn.Linear(code, hidden), nn.ReLU(), nn.Linear(hidden, d))

    def forward(self, x):
        return self.decoder(self.encoder(x))


def build_model():
    return AutoEncoder()


def predict(output):
    return output


def loss_fn(output, inputs):
    return F.mse_loss(output, targets(inputs))
