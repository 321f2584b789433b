"""Control for task D: a standard healthy architecture."""
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
class SmallCNN(nn.Module):
    def __init__(self, n_classes=4):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(32 * 3 * 3, n_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def build_model():
    return SmallCNN()


def predict(output):
    return output


def loss_fn(output, inputs):
    return F.cross_entropy(output, targets(inputs))
