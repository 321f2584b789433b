"""Temporal convolutional network: dilated causal Conv1d layers with GLU gates and residual
connections (gated linear units, Dauphin et al. 2017), classifier on the last time step."""
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
class GatedCausalConv(nn.Module):
    def __init__(self, ch, dilation, kernel=3):
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.conv = nn.Conv1d(ch, 2 * ch, kernel, dilation=dilation)
        self.res = nn.Conv1d(ch, ch, 1)

    def forward(self, x):                       # x: (B, C, T)
        h = F.glu(self.conv(F.pad(x, (self.pad, 0))), dim=1)
        return x + self.res(h)


class GLUTCN(nn.Module):
    def __init__(self, d_in=6, ch=32, dilations=(1, 2, 4, 8), n_classes=2):
        super().__init__()
        self.inp = nn.Conv1d(d_in, ch, 1)
        self.layers = nn.Sequential(*[GatedCausalConv(ch, d) for d in dilations])
        self.head = nn.Linear(ch, n_classes)

    def forward(self, x):                       # x: (B, T, d_in)
        h = self.layers(self.inp(x.transpose(1, 2)))
        return self.head(h[:, :, -1])


def build_model():
    return GLUTCN()


def predict(output):
    return output


def loss_fn(output, inputs):
    return F.cross_entropy(output, targets(inputs))
