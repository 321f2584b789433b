"""Training truth for ``sample_models/siren.py``: does SIREN with its published init learn?

    python bench/siren_truth.py      # prints the Markdown table committed as bench/siren_truth.md

Plain PyTorch, no gradcheck. Each network fits the sample's 2-D signal (``target``) on 2,048
fixed coordinates, full batch, 500 steps, with Adam (lr 1e-4, as Sitzmann et al. 2020) and
with SGD (momentum 0.9, lr 0.1), seeds 0 and 1. Reported: the MSE before and after, on 4,096
held-out coordinates. The control is a ReLU MLP of the same width and depth with PyTorch's
default init. "Learns" means the held-out MSE falls below half its starting value.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent


def sample():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("siren", ROOT / "sample_models" / "siren.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["siren"] = module
    spec.loader.exec_module(module)
    return module


def relu_mlp() -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(2, 128), nn.ReLU()]
    for _ in range(4):
        layers += [nn.Linear(128, 128), nn.ReLU()]

    class Control(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(*layers, nn.Linear(128, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x).squeeze(-1)

    return Control()


def fit(build: Callable[[], nn.Module], optimizer: str, seed: int) -> tuple[float, float]:
    m = sample()
    torch.manual_seed(seed)
    model = build()
    g = torch.Generator().manual_seed(123)
    train, test = torch.rand(2048, 2, generator=g) * 2 - 1, torch.rand(4096, 2, generator=g) * 2 - 1
    opt = (
        torch.optim.Adam(model.parameters(), lr=1e-4)
        if optimizer == "adam"
        else torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    )
    with torch.no_grad():
        before = F.mse_loss(model(test), m.target(test)).item()
    for _ in range(500):
        loss = F.mse_loss(model(train), m.target(train))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = F.mse_loss(model(test), m.target(test)).item()
    return before, after


def main() -> None:
    m = sample()
    print("| network | optimizer | seed | held-out MSE before -> after | learns |")
    print("|---|---|---|---|---|")
    for name, build in (
        ("siren (published init, w0 = 30)", m.build_model),
        ("same small weights, no w0", m.build_uncompensated),
        ("control: ReLU MLP, default init", relu_mlp),
    ):
        for optimizer in ("adam", "sgd"):
            for seed in (0, 1):
                before, after = fit(build, optimizer, seed)
                learns = after < 0.5 * before
                print(
                    f"| {name} | {optimizer} | {seed} | {before:.3f} -> {after:.3f} | {'yes' if learns else 'no'} |"
                )


if __name__ == "__main__":
    main()
