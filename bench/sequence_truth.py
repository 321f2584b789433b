"""Training truth for the sequence samples the model-level temporal profile judges: does each
learn its own task?

    python bench/sequence_truth.py    # prints the Markdown table committed as bench/sequence_truth.md

Plain PyTorch, no gradcheck. Each sample's own ``example_inputs`` (fresh random tokens every
step, batch 64), ``targets`` and ``loss_fn``; 600 steps with Adam (lr 3e-3) and with SGD
(momentum 0.9, lr 0.05), 2 seeds each. Accuracy on 2,048 held-out sequences; chance is 1/8 (1/7
for diagonal_recurrence's copy task). "Learns" means held-out accuracy of 0.5 or more with both
Adam seeds; "does not" means below 0.25 with every optimizer and seed. The controls are the same files' ``build_wide`` and
``build_near_unit``: the same model with the one thing changed that the rule reads.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
STEPS, BATCH = 600, 64
CASES = (
    ("diagonal_recurrence", "build_model"),
    ("diagonal_recurrence", "build_near_unit"),
    ("tcn_short_rf", "build_model"),
    ("tcn_short_rf", "build_wide"),
    ("gru_recent_token", "build_model"),
)


def load(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, ROOT / "sample_models" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def accuracy(name: str, builder: str, optimizer: str, seed: int) -> float:
    m = load(name)
    torch.manual_seed(seed)
    model = getattr(m, builder)()
    opt = (
        torch.optim.Adam(model.parameters(), lr=3e-3)
        if optimizer == "adam"
        else torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    )
    for _ in range(STEPS):
        x = m.example_inputs(BATCH)
        loss = m.loss_fn(model(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.manual_seed(10_000 + seed)
    test = m.example_inputs(2048)
    with torch.no_grad():
        return (model(test).argmax(-1) == m.targets(test)).float().mean().item()


def main() -> None:
    torch.set_num_threads(1)
    print("| sample | builder | Adam seed 0, 1 | SGD+momentum seed 0, 1 | label | time |")
    print("|---|---|---|---|---|---|")
    for name, builder in CASES:
        start = time.perf_counter()
        adam = [accuracy(name, builder, "adam", s) for s in (0, 1)]
        sgd = [accuracy(name, builder, "sgd", s) for s in (0, 1)]
        if min(adam) >= 0.5:
            label = "learns"
        elif max(adam + sgd) < 0.25:
            label = "does not learn"
        else:
            label = "ambiguous"
        took = time.perf_counter() - start
        print(
            f"| {name} | {builder} | {adam[0]:.2f}, {adam[1]:.2f} | {sgd[0]:.2f}, {sgd[1]:.2f} "
            f"| {label} | {took:.0f} s |",
            flush=True,
        )


if __name__ == "__main__":
    main()
