"""Control for task B: a standard healthy architecture."""
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
class GRUClassifier(nn.Module):
    def __init__(self, d_in=6, hidden=32, n_classes=2):
        super().__init__()
        self.rnn = nn.GRU(d_in, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x):
        _, h = self.rnn(x)
        return self.head(h[-1])


def build_model():
    return GRUClassifier()


def predict(output):
    return output


def loss_fn(output, inputs):
    return F.cross_entropy(output, targets(inputs))
