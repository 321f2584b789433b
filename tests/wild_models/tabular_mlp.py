"""MLP for tabular classification, as it sits in a training repo.

The sizes come from the experiment config, so the class has no defaults; argparse runs at
import because the training script below shares this file.
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

parser = argparse.ArgumentParser(description="train the tabular MLP")
parser.add_argument("--lr", type=float, default=3e-4)
parser.add_argument("--epochs", type=int, default=20)
args = parser.parse_args()


class Net(nn.Module):
    def __init__(self, in_dim, hidden, n_classes, dropout=0.1, n_layers=2):
        super().__init__()
        if hidden <= 0:
            raise ValueError(f"hidden must be positive, got {hidden}")
        dims = [in_dim] + [hidden] * n_layers
        self.layers = nn.ModuleList([nn.Linear(dims[i], dims[i + 1]) for i in range(n_layers)])
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, n_classes)

    def forward(self, x):
        for layer in self.layers:
            x = self.drop(F.relu(layer(x)))
        return self.out(x)


def make_net(cfg):
    return Net(cfg["in_dim"], cfg["hidden"], cfg["n_classes"])


if __name__ == "__main__":
    model = Net(30, 128, 5)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    for _ in range(args.epochs):
        x, y = torch.randn(64, 30), torch.randint(0, 5, (64,))
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
