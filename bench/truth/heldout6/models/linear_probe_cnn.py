"""Linear-probe-style transfer: a conv backbone kept frozen (requires_grad False, eval mode,
as if loaded from a checkpoint) and a small trainable MLP head on its flattened features."""
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---- task: which quadrant of a noisy 12x12 image holds the bright blob ----
TASK_KIND = "classification"
_YY, _XX = torch.meshgrid(torch.arange(12.0), torch.arange(12.0), indexing="ij")


def example_inputs(batch_size: int):
    quad = torch.randint(0, 4, (batch_size,))
    cy = (quad // 2) * 6 + 1 + torch.rand(batch_size) * 4
    cx = (quad % 2) * 6 + 1 + torch.rand(batch_size) * 4
    blob = torch.exp(-((_YY[None] - cy[:, None, None]) ** 2 + (_XX[None] - cx[:, None, None]) ** 2) / 2.0)
    img = 2.0 * blob + 0.5 * torch.randn(batch_size, 12, 12)
    return img[:, None]


def targets(inputs):
    # the label is the quadrant with the largest total intensity (almost always the blob's)
    q = inputs[:, 0].reshape(-1, 2, 6, 2, 6).sum((2, 4)).reshape(-1, 4)
    return q.argmax(-1)


# ---- model ----
class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        )

    def forward(self, x):
        return self.conv(x)


class ProbeModel(nn.Module):
    def __init__(self, n_classes=4):
        super().__init__()
        self.backbone = Backbone()
        self.backbone.requires_grad_(False)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(16 * 6 * 6, 64), nn.ReLU(), nn.Linear(64, n_classes))

    def train(self, mode=True):
        super().train(mode)
        self.backbone.eval()          # frozen backbone: keep its BN statistics fixed
        return self

    def forward(self, x):
        return self.head(self.backbone(x))


def build_model():
    return ProbeModel()


def predict(output):
    return output


def loss_fn(output, inputs):
    return F.cross_entropy(output, targets(inputs))
