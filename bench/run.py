"""gradcheck's benchmark: the cost of `diagnose` against the passes it must run anyway.

    python bench/run.py            # CPU, or the GPU when CUDA is available
    python bench/run.py --device cpu --repeats 5 --quick

For each workload it times N plain forward+backward passes (fresh batch each, as `diagnose`
does) and `diagnose(..., steps=N)`, alternating them `--repeats` times in this one process and
keeping the fastest of each, and prints their ratio. Peak memory: on CUDA, the allocator's peak
(reset before each phase); on the CPU, the peak resident set of a fresh child process per phase,
above what it held once the model was built. Then the overhead per layer of MLPs of 10, 100 and
1,000 layers, split into the cost of each extra step and the cost paid once per diagnosis (from a
second timing with 10 more steps), and the CLI's start-up beyond `import torch`. Not a test:
machines are noisy, so it prints ratios measured in one run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from workloads import LARGE, WORKLOADS, Workload, scaling  # noqa: E402

from gradcheck_cli import diagnose  # noqa: E402


def plain(model: torch.nn.Module, work: Workload, steps: int, device: torch.device) -> None:
    model.train()
    for step in range(steps):
        torch.manual_seed(step)
        batch = work.batch(work.batch_size, device)
        model.zero_grad(set_to_none=True)
        work.loss(model(batch), batch).backward()
    if device.type == "cuda":
        torch.cuda.synchronize()


def checked(model: torch.nn.Module, work: Workload, steps: int, device: torch.device) -> None:
    diagnose(
        model,
        lambda b: work.batch(b, device),
        work.loss,
        steps=steps,
        batch_size=work.batch_size,
        device=device.type,
    )


MODES = {"plain": plain, "diagnose": checked}


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def build(work: Workload, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    return work.build().to(device)


def times(work: Workload, steps: int, repeats: int, device: torch.device) -> dict[str, float]:
    model = build(work, device)
    plain(model, work, 1, device)  # warm-up: kernels, allocator
    checked(model, work, 1, device)
    best = {mode: float("inf") for mode in MODES}
    for _ in range(repeats):
        for mode, fn in MODES.items():
            model.zero_grad(set_to_none=True)  # both phases start without gradients
            best[mode] = min(best[mode], timed(fn, model, work, steps, device))
    return best


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(name: str, mode: str, steps: int) -> None:
    """Run in a fresh process: peak RSS of one phase above the RSS after building the model."""
    known = {**WORKLOADS, **LARGE}
    work = known[name] if name in known else scaling(int(name.split("-")[1].split("x")[0]))
    device = torch.device("cpu")
    model = build(work, device)
    gc.collect()
    before = rss_bytes()
    MODES[mode](model, work, steps, device)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"extra": peak - before}))


def peak_memory(work: Workload, steps: int, device: torch.device) -> dict[str, float]:
    if device.type == "cuda":
        model = build(work, device)
        plain(model, work, 1, device)
        peaks = {}
        for mode, fn in MODES.items():
            model.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            fn(model, work, steps, device)
            torch.cuda.synchronize()
            peaks[mode] = torch.cuda.max_memory_allocated() - base
        return peaks
    peaks = {}
    for mode in MODES:
        done = subprocess.run(
            [sys.executable, __file__, "--memory-child", work.name, mode, str(steps)],
            capture_output=True,
            text=True,
            check=True,
        )
        peaks[mode] = json.loads(done.stdout.strip().splitlines()[-1])["extra"]
    return peaks


def startup() -> tuple[float, float]:
    code = (
        "import time; t=time.perf_counter(); import torch; t1=time.perf_counter(); "
        "import gradcheck_cli.cli; t2=time.perf_counter(); print(t1-t, t2-t1)"
    )
    root = str(Path(__file__).resolve().parent.parent)
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
        )
        for _ in range(3)
    ]
    pairs = [tuple(float(x) for x in r.stdout.split()) for r in runs]
    return min(p[0] for p in pairs), min(p[1] for p in pairs)


MORE = 10  # extra steps of the second timing of each scaling workload


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument(
        "--steps", type=int, default=3, help="N: passes per phase (gradcheck's default)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="skip the 1,000-layer MLP and memory")
    parser.add_argument(
        "--large", action="store_true", help="GPU-sized workloads (default on CUDA)"
    )
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        name, mode, steps = args.memory_child
        memory_child(name, mode, int(steps))
        return
    device = torch.device(
        "cuda"
        if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
        else "cpu"
    )
    where = (
        torch.cuda.get_device_name(0)
        if device.type == "cuda"
        else f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"
    )
    print(
        f"gradcheck benchmark: torch {torch.__version__} on {device.type} ({where}); N={args.steps} steps, best of {args.repeats}"
    )
    print(
        f"{'workload':<14} {'params':>8} {'plain s':>9} {'diagnose s':>11} {'time x':>7} {'plain MB':>9} {'diag MB':>8} {'mem x':>6}"
    )
    large = args.large or device.type == "cuda"
    for work in (LARGE if large else WORKLOADS).values():
        params = sum(p.numel() for p in build(work, torch.device("cpu")).parameters())
        t = times(work, args.steps, args.repeats, device)
        m = (
            {"plain": float("nan"), "diagnose": float("nan")}
            if args.quick
            else peak_memory(work, args.steps, device)
        )
        print(
            f"{work.name:<14} {params / 1e6:>7.1f}M {t['plain']:>9.3f} {t['diagnose']:>11.3f} "
            f"{t['diagnose'] / t['plain']:>7.2f} {m['plain'] / 2**20:>9.1f} {m['diagnose'] / 2**20:>8.1f} "
            f"{m['diagnose'] / m['plain']:>6.2f}"
        )
    # A diagnosis costs a part per step (hooks, statistics) and a part once (capture, the graph
    # walk, aggregation, checks): a second timing, MORE steps longer, tells them apart.
    print(
        f"\n{'scaling':<14} {'layers':>8} {'plain s':>9} {'diagnose s':>11} {'time x':>7} "
        f"{'extra ms/layer':>15} {'step x':>7} {'once, in plain steps':>21}"
    )
    for depth in (10, 100) if args.quick else (10, 100, 1000):
        work = scaling(depth)
        t = times(work, args.steps, args.repeats, device)
        longer = times(work, args.steps + MORE, args.repeats, device)
        per_layer = (t["diagnose"] - t["plain"]) / (depth * args.steps) * 1e3
        plain_step = (longer["plain"] - t["plain"]) / MORE
        step_x = (longer["diagnose"] - t["diagnose"]) / MORE / plain_step
        once = t["diagnose"] / plain_step - args.steps * step_x
        print(
            f"{work.name:<14} {depth:>8} {t['plain']:>9.3f} {t['diagnose']:>11.3f} "
            f"{t['diagnose'] / t['plain']:>7.2f} {per_layer:>15.3f} {step_x:>7.2f} {once:>21.1f}"
        )
    torch_s, extra_s = startup()
    print(
        f"\nstart-up: import torch {torch_s:.2f} s; gradcheck's CLI imports {extra_s:.2f} s beyond it (target < 1.5 s)"
    )


if __name__ == "__main__":
    main()
