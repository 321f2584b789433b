"""Deep tanh MLP regressor, weights initialised N(0, 0.01) as in older papers' recipes."""
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
class DeepTanh(nn.Module):
    def __init__(self, d_in=16, width=64, depth=12):
        super().__init__()
        layers = [nn.Linear(d_in, width), nn.Tanh()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.Tanh()]
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        for m in self.net:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)

    def forward(self, x):
        return self.net(x).squeeze(-1)


def build_model():
    return DeepTanh()


def predict(output):
    return output


def loss_fn(output, inputs):
    return F.mse_loss(output, targets(inputs))
