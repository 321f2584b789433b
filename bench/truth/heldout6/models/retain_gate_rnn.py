"""Custom gated recurrence: h <- r * h + (1 - r) * candidate. The retain gate's bias is
set high so the memory 'persists by default' (the forget-bias trick, taken too far)."""
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
class RetainCell(nn.Module):
    def __init__(self, d_in, hidden, retain_bias=12.0):
        super().__init__()
        self.gate = nn.Linear(d_in + hidden, hidden)
        self.cand = nn.Linear(d_in + hidden, hidden)
        nn.init.constant_(self.gate.bias, retain_bias)

    def forward(self, x, h):
        xh = torch.cat([x, h], -1)
        r = torch.sigmoid(self.gate(xh))
        return r * h + (1 - r) * torch.tanh(self.cand(xh))


class RetainRNN(nn.Module):
    def __init__(self, d_in=6, hidden=32, n_classes=2):
        super().__init__()
        self.hidden = hidden
        self.cell = RetainCell(d_in, hidden)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x):
        h = x.new_zeros(x.shape[0], self.hidden)
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
        return self.head(h)


def build_model():
    return RetainRNN()


def predict(output):
    return output


def loss_fn(output, inputs):
    return F.cross_entropy(output, targets(inputs))
