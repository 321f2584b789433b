"""Does a learning-rate warm-up cure the 24-layer Post-LN transformer within the learning
probe's budget? (Issue 27 item 3 asks for a warm-up remedy: this is why there is none yet.)

``sample_models/post_ln_deep.py`` trained with Adam 1e-3, batch 8, 300 steps (the probe's
budget under ``--learn 300``), with a linear warm-up ``min(1, (k + 1) / W)`` for W in 0, 50, 100,
150, seeds 0 and 1 (the weights are built under seed 0; the seed changes the batches); held-out
loss on 256 fixed sequences, start -> end. Chance is ln 8 = 2.08. The Pre-LN control
(``build_pre_ln``) without warm-up for comparison.

    python bench/warmup_post_ln.py    # about 3 minutes on 2 CPU cores
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sample_models"))
import post_ln_deep as P  # noqa: E402


def run(
    build: Callable[[], nn.Module], warm: int, seed: int, steps: int = 300
) -> tuple[float, float]:
    torch.manual_seed(0)
    model = build()
    torch.manual_seed(100 + seed)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    sched = (
        torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / warm)) if warm else None
    )
    held = torch.randint(0, P.VOCAB, (256, P.LENGTH), generator=torch.Generator().manual_seed(9))

    def heldout() -> float:
        model.eval()
        with torch.no_grad():
            loss = float(P.loss_fn(model(held), held))
        model.train()
        return loss

    start = heldout()
    for _ in range(steps):
        x = P.example_inputs(8)
        loss = P.loss_fn(model(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
    return start, heldout()


def main() -> None:
    print("| model | warm-up steps | seed 0 start -> end | seed 1 start -> end |")
    print("|---|---:|---|---|")
    rows = [("post-LN", P.build_model, w) for w in (0, 50, 100, 150)] + [
        ("pre-LN", P.build_pre_ln, 0)
    ]
    for name, build, warm in rows:
        cells = [f"{a:.3f} -> {b:.3f}" for a, b in (run(build, warm, seed) for seed in (0, 1))]
        print(f"| {name} | {warm} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
