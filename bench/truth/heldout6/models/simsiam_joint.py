"""Supervised classifier with a SimSiam auxiliary loss: two noisy views, a predictor MLP,
and a stop-gradient on the target branch (on purpose, as in Chen & He 2021)."""
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
class SimSiamClassifier(nn.Module):
    def __init__(self, d_in=32, hidden=128, proj=64, n_classes=4, noise=0.1):
        super().__init__()
        self.noise = noise
        self.encoder = nn.Sequential(
            nn.Linear(d_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, proj), nn.BatchNorm1d(proj),
        )
        self.predictor = nn.Sequential(nn.Linear(proj, 32), nn.ReLU(), nn.Linear(32, proj))
        self.classifier = nn.Linear(proj, n_classes)

    def forward(self, x):
        if self.training:
            v1 = x + self.noise * torch.randn_like(x)
            v2 = x + self.noise * torch.randn_like(x)
        else:
            v1 = v2 = x
        z1, z2 = self.encoder(v1), self.encoder(v2)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        return {
            "logits": self.classifier(z1),
            "p1": p1, "p2": p2,
            "z1": z1.detach(), "z2": z2.detach(),
        }


def build_model():
    return SimSiamClassifier()


def predict(output):
    return output["logits"]


def loss_fn(output, inputs):
    sim = -0.5 * (F.cosine_similarity(output["p1"], output["z2"], dim=-1).mean()
                  + F.cosine_similarity(output["p2"], output["z1"], dim=-1).mean())
    return F.cross_entropy(output["logits"], targets(inputs)) + 0.5 * sim
