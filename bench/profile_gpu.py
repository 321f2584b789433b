"""Where diagnose's time goes on a GPU (issue 14): one plain run and one diagnosis of 3 steps
each under ``torch.profiler``, for the 1,000-layer narrow MLP and ResNet-18-BN at batch 256.

    python bench/profile_gpu.py        # on a CUDA machine

Prints per mode the wall time, the CUDA kernels launched and their total GPU time, and the
host (CPU) operators of the diagnosis that cost most. A diagnosis whose extra GPU time is small
next to its extra wall time is bound by the host: Python hooks and kernel launches.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import build, checked, plain  # noqa: E402
from workloads import LARGE, scaling  # noqa: E402


def one(work, mode, fn, device: torch.device) -> None:
    model = build(work, device)
    fn(model, work, 1, device)  # warm-up
    model.zero_grad(set_to_none=True)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        fn(model, work, 3, device)
        torch.cuda.synchronize()
        wall = time.perf_counter() - start
    events = prof.key_averages()
    launches = sum(
        e.count
        for e in events
        if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC")
    )
    gpu_us = sum(e.self_device_time_total for e in events)
    print(
        f"{work.name:<18} {mode:<9} wall {wall * 1e3:8.1f} ms  kernels {launches:7d}  GPU busy {gpu_us / 1e3:8.1f} ms"
    )
    if mode == "diagnose":
        print(events.table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40))


def main() -> None:
    device = torch.device("cuda")
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}")
    for work in (scaling(1000), LARGE["resnet18-bn-b256"]):
        for mode, fn in (("plain", plain), ("diagnose", checked)):
            one(work, mode, fn, device)


if __name__ == "__main__":
    main()
