"""Metric-learning classifier: an embedding network and one learnable prototype per class;
logits are negative squared distances to the prototypes (prototypical-network style)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---- task: 4-way classification of 32-d vectors by a fixed random teacher ----
_TG = torch.Generator().manual_seed(1001)
_TW1 = torch.randn(32, 64, generator=_TG) / 32 ** 0.5
_TW2 = torch.randn(64, 4, generator=_TG) / 64 ** 0.5
TASK_KIND = "classification"


def example_inputs(batch_size: int):
    return torch.randn(batch_size, 32)


def targets(inputs):
    return (torch.tanh(2.0 * inputs @ _TW1) @ _TW2).argmax(-1)


# ---- model ----
class ProtoNet(nn.Module):
    def __init__(self, d_in=32, hidden=128, emb=16, n_classes=4):
        super().__init__()
        self.embed = nn.Sequential(
            nn.Linear(d_in, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, emb),
        )
        self.prototypes = nn.Parameter(torch.randn(n_classes, emb))

    def forward(self, x):
        e = self.embed(x)
        return -torch.cdist(e, self.prototypes) ** 2


def build_model():
    return ProtoNet()


def predict(output):
    return output


def loss_fn(output, inputs):
    return F.cross_entropy(output, targets(inputs))
