"""Message-passing node classifier. The loss flattens the node logits node-major (the
order the author's message-passing code uses elsewhere) but the labels batch-major."""
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
class MPLayer(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.msg = nn.Linear(d_in, d_out)
        self.upd = nn.Linear(d_in + d_out, d_out)

    def forward(self, h, adj):
        deg = adj.sum(-1, keepdim=True).clamp(min=1)
        m = adj @ self.msg(h) / deg
        return F.relu(self.upd(torch.cat([h, m], -1)))


class NodeNet(nn.Module):
    def __init__(self, d_in=N_FEAT, hidden=32, n_classes=3):
        super().__init__()
        self.l1 = MPLayer(d_in, hidden)
        self.l2 = MPLayer(hidden, hidden)
        self.out = nn.Linear(hidden, n_classes)

    def forward(self, x, adj):
        return {"node_logits": self.out(self.l2(self.l1(x, adj), adj))}


def build_model():
    return NodeNet()


def predict(output):
    return output["node_logits"]


def loss_fn(output, inputs):
    logits = output["node_logits"]                      # (B, N, C)
    c = logits.shape[-1]
    flat_logits = logits.transpose(0, 1).reshape(-1, c)  # node-major
    flat_y = targets(inputs).reshape(-1)                  # batch-major
    return F.cross_entropy(flat_logits, flat_y)
