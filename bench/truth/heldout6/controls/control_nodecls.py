"""Control for task G: a standard healthy architecture."""
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---- task: per-node 3-way labels of random 8-node graphs from a fixed teacher ----
_TG = torch.Generator().manual_seed(1007)
_TT = torch.randn(8, 3, generator=_TG)
TASK_KIND = "classification"
N_NODES = 8
N_FEAT = 8


def example_inputs(batch_size: int):
    x = torch.randn(batch_size, N_NODES, N_FEAT)
    upper = (torch.rand(batch_size, N_NODES, N_NODES) < 0.35).float().triu(1)
    adj = upper + upper.transpose(1, 2)
    return {"x": x, "adj": adj}


def targets(inputs):
    x, adj = inputs["x"], inputs["adj"]
    deg = adj.sum(-1, keepdim=True).clamp(min=1)
    agg = x + adj @ x / deg
    return (agg @ _TT).argmax(-1)


# ---- model ----
class GCN(nn.Module):
    def __init__(self, d_in=N_FEAT, hidden=32, n_classes=3):
        super().__init__()
        self.self1 = nn.Linear(d_in, hidden)
        self.nbr1 = nn.Linear(d_in, hidden, bias=False)
        self.self2 = nn.Linear(hidden, hidden)
        self.nbr2 = nn.Linear(hidden, hidden, bias=False)
        self.out = nn.Linear(hidden, n_classes)

    def forward(self, x, adj):
        deg = adj.sum(-1, keepdim=True).clamp(min=1)
        h = F.relu(self.self1(x) + self.nbr1(adj @ x / deg))
        h = F.relu(self.self2(h) + self.nbr2(adj @ h / deg))
        return self.out(h)


def build_model():
    return GCN()


def predict(output):
    return output


def loss_fn(output, inputs):
    return F.cross_entropy(output.reshape(-1, output.shape[-1]), targets(inputs).reshape(-1))
