"""Run by tests/test_distributed.py, alone or under torchrun: watch() in a plain loop, the model
wrapped in DDP (``ddp``) or sharded with FSDP2's ``fully_shard`` per layer (``fsdp``).

Trains a deep sigmoid MLP for 6 SGD steps on seeded global batches of 16, each rank on its
contiguous half, with ``watch(every=2)``; rank 0 writes the report's findings and statistics.
"""

from __future__ import annotations

import gc
import json
import os
import sys

import torch
import torch.distributed as dist
from torch import nn

from gradcheck_cli import watch
from gradcheck_cli.findings import Report
from gradcheck_cli.stats import value


def main(out: str, mode: str) -> None:
    ddp = "WORLD_SIZE" in os.environ
    if ddp:
        dist.init_process_group("gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if ddp else (0, 1)
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(8):
        layers += [nn.Linear(32, 32), nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Linear(32, 4))
    run = model
    if ddp and mode == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for layer in model:
            if isinstance(layer, nn.Linear):
                fully_shard(layer)
        fully_shard(model)
    elif ddp:
        run = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(run.parameters(), lr=0.1)
    rows = slice(rank * 16 // world, (rank + 1) * 16 // world)
    with watch(run, every=2) as watcher:
        for step in range(6):
            g = torch.Generator().manual_seed(step)
            x, y = torch.randn(16, 32, generator=g), torch.randint(0, 4, (16,), generator=g)
            loss = nn.functional.cross_entropy(run(x[rows]), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    report = watcher.report()
    if rank == 0:
        write(report, out)
    if ddp:
        # Freed before the group ends (torch 2.13 aborts at exit otherwise, now and then).
        del run, model, optimizer, watcher, report
        gc.collect()
        dist.destroy_process_group()


def write(report: Report | None, out: str) -> None:
    """The report's findings, run and every layer's statistics at full precision."""
    assert report is not None
    data = {
        "findings": [(f.id, f.severity.value, list(f.layers)) for f in report.findings],
        "run": {k: getattr(report.run, k) for k in ("steps", "shard", "world_size")},
        "stats": {
            layer.name: [
                value(layer.grad_rms),
                value(layer.act_rms),
                value(layer.out_grad_rms),
                value(layer.saturated_fraction),
            ]
            for layer in report.layers
        },
    }
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(data, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "ddp")
