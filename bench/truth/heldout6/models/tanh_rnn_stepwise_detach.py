"""Hand-rolled tanh RNN; the state is detached at every step 'to keep memory bounded'
(meant as truncated BPTT)."""
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
class StepRNN(nn.Module):
    def __init__(self, d_in=6, hidden=48, n_classes=2):
        super().__init__()
        self.hidden = hidden
        self.cell = nn.RNNCell(d_in, hidden, nonlinearity="tanh")
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x):
        h = x.new_zeros(x.shape[0], self.hidden)
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h.detach())
        return self.head(h)


def build_model():
    return StepRNN()


def predict(output):
    return output


def loss_fn(output, inputs):
    return F.cross_entropy(output, targets(inputs))
