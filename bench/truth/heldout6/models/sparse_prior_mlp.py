"""MLP whose hidden biases start negative, to encourage sparse activations from the start
(a 'sparsity prior' init)."""
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
class SparseMLP(nn.Module):
    def __init__(self, d_in=32, hidden=128, depth=3, n_classes=4, bias_init=-3.0):
        super().__init__()
        layers = []
        d = d_in
        for _ in range(depth):
            lin = nn.Linear(d, hidden)
            nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
            nn.init.constant_(lin.bias, bias_init)
            layers += [lin, nn.ReLU()]
            d = hidden
        self.hidden = nn.Sequential(*layers)
        self.classifier = nn.Linear(hidden, n_classes)

    def forward(self, x):
        return self.classifier(self.hidden(x))


def build_model():
    return SparseMLP()


def predict(output):
    return output


def loss_fn(output, inputs):
    return F.cross_entropy(output, targets(inputs))
