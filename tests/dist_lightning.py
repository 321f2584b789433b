"""Run by tests/test_distributed.py: the Lightning callback on 1 CPU device, or with
``Trainer(strategy="ddp", accelerator="cpu", devices=2)`` (Lightning starts the second process
by running this file again). Every rank takes every second sample in order, so a step's global
batch is the one-device run's batch of 16; rank 0 writes the callback's report.
"""

from __future__ import annotations

import os
import sys

import lightning as L
import torch
from dist_watch import write
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from gradcheck_cli.integrations.lightning import GradcheckCallback

g = torch.Generator().manual_seed(1)
DATA = TensorDataset(torch.randn(64, 32, generator=g), torch.randint(0, 4, (64,), generator=g))


class Net(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        layers: list[nn.Module] = []
        for _ in range(8):
            layers += [nn.Linear(32, 32), nn.Sigmoid()]
        self.net = nn.Sequential(*layers, nn.Linear(32, 4))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def train_dataloader(self) -> DataLoader:
        world, rank = self.trainer.world_size, self.trainer.global_rank
        sampler = DistributedSampler(DATA, world, rank, shuffle=False)
        return DataLoader(DATA, batch_size=16 // world, sampler=sampler)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def main(devices: int, out: str) -> None:
    callback = GradcheckCallback(every=1)
    trainer = L.Trainer(
        strategy="ddp" if devices > 1 else "auto",
        accelerator="cpu",
        devices=devices,
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        callbacks=[callback],
    )
    trainer.fit(Net())
    if trainer.global_rank == 0:
        write(callback.report, out)
    # torch 2.13 (gloo, CPU) aborts at interpreter shutdown now and then when DDP's objects,
    # kept in reference cycles, outlive the process group; the run is over: end at once.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
