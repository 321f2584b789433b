"""Where a diagnosis of a deep, narrow MLP spends its time on the CPU (issue 14).

    python bench/profile_cpu.py                  # both tables, 100 layers
    python bench/profile_cpu.py --depth 1000 --once

``--steps`` (default): one forward, backward and end of step, timed apart, for a plain step and
for a step under ``capture`` (the hooks and ``Recorder.end_step`` alone, without the rest of
``diagnose``), 100 steps in a row, the fastest of 5 rounds, alternating the two, in this one
process and one thread. ``--once``: one ``diagnose(steps=1)`` with a timer around each of its
parts that run once per diagnosis (capture's set-up and restore, the graph walk, aggregation,
the checks), averaged over 5 diagnoses. Not a test: it prints what one run measured.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradcheck_cli import capture, diagnose, hooks, measure, pipeline, snapshot  # noqa: E402


def mlp(depth: int, width: int) -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(256, width), nn.ReLU()]
    for _ in range(depth - 2):
        layers += [nn.Linear(width, width), nn.ReLU()]
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def phases(model: nn.Module, recorder: hooks.Recorder | None, steps: int) -> list[float]:
    """Milliseconds per step: forward (with the loss), backward, end of step."""
    x = torch.randn(32, 256)
    y = torch.zeros(32, dtype=torch.long)
    total = [0.0, 0.0, 0.0]
    for _ in range(steps):
        if recorder is not None:
            recorder.begin_step()
        else:
            model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        loss = nn.functional.cross_entropy(model(x), y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        if recorder is not None:
            recorder.end_step(loss.detach())
        t3 = time.perf_counter()
        for k, dt in enumerate((t1 - t0, t2 - t1, t3 - t2)):
            total[k] += dt
    return [1e3 * t / steps for t in total]


def step_table(depth: int, width: int) -> None:
    model = mlp(depth, width)
    best: dict[str, list[float]] = {}
    for _ in range(5):
        measured = {"plain": phases(model, None, 100)}
        with capture.capture(model) as recorder:
            measured["measured"] = phases(model, recorder, 100)
        for mode, values in measured.items():
            if mode not in best or sum(values) < sum(best[mode]):
                best[mode] = values
    print(f"MLP of {depth} layers, width {width}, batch 32: ms per step")
    print(f"{'':10} {'forward':>8} {'backward':>9} {'end':>6} {'total':>7}")
    for mode, (fwd, bwd, end) in best.items():
        print(f"{mode:10} {fwd:>8.2f} {bwd:>9.2f} {end:>6.2f} {fwd + bwd + end:>7.2f}")
    ratio = sum(best["measured"]) / sum(best["plain"])
    print(f"step x {ratio:.2f}\n")


def once_table(depth: int, width: int) -> None:
    spent: dict[str, float] = collections.defaultdict(float)

    def timed(owner: Any, name: str, label: str) -> None:
        inner: Callable[..., Any] = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - start

        setattr(owner, name, wrapper)

    timed(measure.Passes, "step", "the step (forward, backward, end of step, graph walk)")
    timed(hooks.Recorder, "structure", "the graph walk (graph.trace), inside the step")
    timed(hooks, "static_infos", "weight norms and layer facts (static_infos)")
    timed(measure, "aggregate", "aggregation into statistics (aggregate.aggregate)")
    timed(pipeline, "run_checks", "the checks (run_checks)")
    timed(snapshot.ModelState, "__init__", "model state saved (ModelState)")
    timed(snapshot.ModelState, "restore", "model state restored")
    timed(capture, "measured_modules", "modules to measure (measured_modules)")
    timed(pipeline, "check_runnable", "preflight (check_runnable)")
    model = mlp(depth, width)
    y = torch.zeros(32, dtype=torch.long)

    def run() -> None:
        diagnose(
            model,
            lambda b: torch.randn(b, 256),
            lambda out, _: nn.functional.cross_entropy(out, y),
            steps=1,
            batch_size=32,
            device="cpu",
        )

    run()
    spent.clear()
    rounds = 5
    start = time.perf_counter()
    for _ in range(rounds):
        run()
    whole = (time.perf_counter() - start) / rounds
    plain = min(sum(phases(model, None, 20)) for _ in range(3))
    print(f"diagnose(steps=1) of an MLP of {depth} layers: {1e3 * whole:.1f} ms")
    print(f"(a plain step: {plain:.1f} ms)")
    for label, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"  {label:<56} {1e3 * seconds / rounds:>7.1f} ms")
    rest = whole - sum(v for k, v in spent.items() if "inside" not in k) / rounds
    print(f"  {'everything else (api, capture, hooks set-up, report)':<56} {1e3 * rest:>7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", action="store_true", help="only the per-step table")
    parser.add_argument("--once", action="store_true", help="only the once-per-diagnosis table")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, one thread")
    if not args.once:
        step_table(args.depth, args.width)
    if not args.steps:
        once_table(args.depth, args.width)


if __name__ == "__main__":
    main()
