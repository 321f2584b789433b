"""CNN fine-tuning recipe: freeze the conv backbone, train the classifier and a learned
logit temperature. The classifier lives inside self.net, so freeze_backbone() also freezes it."""
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
class FinetuneCNN(nn.Module):
    def __init__(self, n_classes=4):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 3 * 3, n_classes),
        )
        self.logit_scale = nn.Parameter(torch.zeros(()))
        self.freeze_backbone()

    def freeze_backbone(self):
        for m in self.net.modules():
            for p in m.parameters(recurse=False):
                p.requires_grad_(False)

    def forward(self, x):
        return self.net(x) * self.logit_scale.exp()


def build_model():
    return FinetuneCNN()


def predict(output):
    return output


def loss_fn(output, inputs):
    return F.cross_entropy(output, targets(inputs))
