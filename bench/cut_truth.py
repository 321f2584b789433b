"""Training truth for the cut-graph sample models: do they learn, next to a control that does?

    python bench/cut_truth.py            # prints the Markdown table committed as bench/cut_truth.md

Plain PyTorch, no gradcheck: each model and its control (the same class with the cut removed)
is trained on one learnable task, 512 fixed inputs labelled by a random teacher MLP (32 -> 64
tanh -> 10 classes, argmax), for 200 steps of mini-batches of 64, with Adam (lr 1e-3) and with
SGD (momentum 0.9, lr 0.05), from 2 seeds. Reported: the full-set cross-entropy after training,
the control's, and how far the cut layers' weights moved (max |w_after - w_before|). A run
"trains" when its loss falls below chance (ln 10, a model that ignores its input) by at least
half as much as the control's does with the same optimizer and seed. SimSiam (self-supervised) is trained on its own loss, two noisy
views of the same inputs; it "trains" when its loss falls by a tenth and the encoder moves.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
STEPS, BATCH, N = 200, 64, 512
CHANCE = math.log(10)
OPTIMIZERS: dict[str, Callable[[list[nn.Parameter]], torch.optim.Optimizer]] = {
    "adam": lambda p: torch.optim.Adam(p, lr=1e-3),
    "sgd": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
}


def sample(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, ROOT / "sample_models" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def task() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(N, 32, generator=g)
    w1, w2 = torch.randn(32, 64, generator=g) / 32**0.5, torch.randn(64, 10, generator=g)
    return x, (torch.tanh(x @ w1) @ w2).argmax(-1)


def controls() -> dict[str, tuple[Callable[[], nn.Module], Callable[[], nn.Module], str]]:
    """name -> (the sample model, its control without the cut, the cut layers' prefix)."""
    detached, no_grad, vq = (
        sample("detached_encoder"),
        sample("no_grad_backbone"),
        sample("vq_argmax"),
    )

    class Attached(detached.Classifier):  # type: ignore[name-defined,misc]
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.encoder(x))

    class WithGrad(no_grad.FineTuner):  # type: ignore[name-defined,misc]
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(self.backbone(x))

    return {
        "detached_encoder": (detached.build_model, Attached, "encoder."),
        "no_grad_backbone": (
            no_grad.build_model,
            lambda: WithGrad(no_grad.Config()),
            "backbone.",
        ),
        "vq_argmax": (vq.build_model, vq.build_straight_through, "encoder."),
    }


def train(model: nn.Module, opt: str, seed: int, prefix: str) -> tuple[float, float]:
    """Full-set loss after training, and the largest move of a weight under ``prefix``."""
    x, y = task()
    before = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith(prefix)}
    optimizer = OPTIMIZERS[opt](list(model.parameters()))
    g = torch.Generator().manual_seed(seed)
    for _ in range(STEPS):
        index = torch.randint(0, N, (BATCH,), generator=g)
        out = model(x[index])
        if isinstance(out, dict):  # vq_argmax: logits and the codebook's own loss
            loss = F.cross_entropy(out["logits"], y[index]) + out["vq_loss"]
        else:
            loss = F.cross_entropy(out, y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        out = model(x)
        final = F.cross_entropy(out["logits"] if isinstance(out, dict) else out, y).item()
    moved = max(
        (p.detach() - before[n]).abs().max().item()
        for n, p in model.named_parameters()
        if n in before
    )
    return final, moved


def simsiam(opt: str, seed: int) -> tuple[float, float, float]:
    module = sample("simsiam_stopgrad")
    torch.manual_seed(seed)
    model = module.build_model()
    x, _ = task()
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "encoder" in n}
    optimizer = OPTIMIZERS[opt](list(model.parameters()))
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(STEPS):
        batch = x[torch.randint(0, N, (BATCH,), generator=g)]
        views = (
            batch + 0.1 * torch.randn(batch.shape, generator=g),
            batch + 0.1 * torch.randn(batch.shape, generator=g),
        )
        loss = module.loss_fn(model(*views), views)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    moved = max(
        (p.detach() - before[n]).abs().max().item()
        for n, p in model.named_parameters()
        if n in before
    )
    return sum(losses[:10]) / 10, sum(losses[-10:]) / 10, moved


def main() -> None:
    print("| model | optimizer | seed | loss | control loss | cut layers moved | trains |")
    print("|---|---|---|---|---|---|---|")
    for name, (build, control, prefix) in controls().items():
        for opt in OPTIMIZERS:
            for seed in (0, 1):
                torch.manual_seed(seed)
                loss, moved = train(build(), opt, seed, prefix)
                torch.manual_seed(seed)
                reference, _ = train(control(), opt, seed, prefix)
                trains = CHANCE - loss >= 0.5 * (CHANCE - reference)
                print(
                    f"| {name} | {opt} | {seed} | {loss:.3f} | {reference:.3f} | {moved:.1e} | "
                    f"{'yes' if trains else 'no'} |"
                )
    for opt in OPTIMIZERS:
        for seed in (0, 1):
            first, last, moved = simsiam(opt, seed)
            trains = moved > 0 and last < first - 0.1 * abs(first)
            print(
                f"| simsiam_stopgrad | {opt} | {seed} | {first:.3f} -> {last:.3f} | - | "
                f"{moved:.1e} | {'yes' if trains else 'no'} |"
            )


if __name__ == "__main__":
    main()
