"""Tied-weight autoencoder: the decoder reuses the encoder's weight matrices transposed."""
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
class TiedAE(nn.Module):
    def __init__(self, d=32, hidden=64, code=8):
        super().__init__()
        self.W1 = nn.Parameter(torch.empty(hidden, d))
        self.W2 = nn.Parameter(torch.empty(code, hidden))
        nn.init.xavier_uniform_(self.W1)
        nn.init.xavier_uniform_(self.W2)
        self.b1 = nn.Parameter(torch.zeros(hidden))
        self.b2 = nn.Parameter(torch.zeros(code))
        self.c1 = nn.Parameter(torch.zeros(hidden))
        self.c2 = nn.Parameter(torch.zeros(d))

    def forward(self, x):
        h = F.elu(F.linear(x, self.W1, self.b1))
        z = F.linear(h, self.W2, self.b2)
        h2 = F.elu(F.linear(z, self.W2.t(), self.c1))
        return F.linear(h2, self.W1.t(), self.c2)


def build_model():
    return TiedAE()


def predict(output):
    return output


def loss_fn(output, inputs):
    return F.mse_loss(output, targets(inputs))
