"""Diagnosing under ``torchrun``: one seeded global batch split across ranks, one merged report.

Every rank builds the model (DDP then broadcasts rank 0's weights and buffers, so the replicas
are equal even when ``build_model`` is not deterministic), draws the same seeded *global* batch
and keeps its own contiguous slice of ``batch_size / world`` rows. With a mean-reduced loss the
averaged gradients are those of one process on the whole batch. Per step, each rank packs what it
measured into one tensor and one ``all_gather`` gives every rank every rank's values, which it
merges locally (:meth:`Merger.merge`): sums of squares, counts and sizes add up; a unit is dead
only when it is dead on every rank's slice (per-unit maxima); a call's saturated fraction is its
summed count over its summed size; the first module that produced a NaN is the first on any rank.
Output gradients are rescaled by ``1/world``: each rank's loss is a mean over its slice, so the
gradient reaching a sample is ``world`` times what it is in the mean over the whole batch.

Parameter gradients need no merging under DDP: DDP has averaged them, so every rank holds the same.
Under FSDP2 (``--shard fsdp``) each rank holds its shard of every gradient (rows of dim 0): their
sums of squares and counts add up like the rest. The weights' norms and the autograd graph's
structure are read before the model is sharded, from the whole model every rank built; for a
model built on the meta device (``--on-meta``), the structure from a forward pass on meta and
the norms from each rank's initialised shards (:func:`materialise`, :func:`whole_norms`).
"""

from __future__ import annotations

import datetime
import math
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from gradcheck_cli.choices import ShardMode
from gradcheck_cli.errors import InputError, UsageError
from gradcheck_cli.inputs.calling import Labeled
from gradcheck_cli.memory import RESETS
from gradcheck_cli.seeding import seeded

# How long ranks wait for each other to start before giving up (a rank that failed to build).
JOIN_TIMEOUT = datetime.timedelta(minutes=5)

# Whether :func:`join` started the default process group (so :func:`leave` ends it) rather than
# the caller's own script.
_started_group = False


@dataclass(frozen=True)
class Shard:
    """This process's place in the job: its rank, the world size and how the model is split."""

    rank: int
    world: int
    mode: ShardMode
    local_rank: int = 0

    def rows(self, batch_size: int) -> slice:
        """This rank's rows of a global batch of ``batch_size``."""
        share = batch_size // self.world
        return slice(self.rank * share, (self.rank + 1) * share)

    def check_batch(self, batch_size: int) -> None:
        """Refuse a global batch that does not split evenly: the merge assumes equal slices."""
        if batch_size % self.world:
            raise UsageError(
                f"--batch-size {batch_size} is the global batch and must split evenly over the "
                f"{self.world} ranks; use a multiple of {self.world}"
            )


def fsdp2_available() -> bool:
    """Whether this torch has FSDP2's ``fully_shard`` (public from torch 2.6)."""
    try:
        from torch.distributed.fsdp import fully_shard  # noqa: F401
    except ImportError:
        return False
    return True


def join(mode: ShardMode, device: torch.device) -> Shard:
    """Join the ``torchrun`` job: initialise the default process group unless the caller has
    (gloo on CPU, NCCL on CUDA with one device per local rank)."""
    if not dist.is_available():
        raise UsageError("--shard needs torch.distributed, which this torch build lacks")
    if mode is ShardMode.FSDP and not fsdp2_available():
        raise UsageError(
            f"--shard fsdp needs FSDP2 (torch.distributed.fsdp.fully_shard, torch 2.6 or "
            f"later); this is torch {torch.__version__}: use --shard ddp"
        )
    if not dist.is_initialized():
        if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
            raise UsageError(
                "--shard runs under torchrun: torchrun --nproc_per_node N -m gradcheck_cli "
                "diagnose MODEL --shard ddp"
            )
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=JOIN_TIMEOUT)
        global _started_group
        _started_group = True
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return Shard(dist.get_rank(), dist.get_world_size(), mode, local)


def leave() -> None:
    """End the process group :func:`join` started, once every rank gets here (after rank 0 has
    written its reports). Without it, a rank that exits first can abort in the process group's
    destructor (``terminate called without an active exception``, exit -6), and torchrun, seeing
    one rank done with a non-zero verdict, stops the others, rank 0 possibly mid-write. A group
    the caller started is the caller's to end."""
    global _started_group
    if not (_started_group and dist.is_available() and dist.is_initialized()):
        return
    _started_group = False
    dist.barrier()
    dist.destroy_process_group()


def wrap(model: nn.Module, shard: Shard, device: torch.device) -> nn.Module:
    """The module every rank runs forward through: ``model`` under DDP. Hooks stay on
    ``model`` itself; DDP averages its parameters' gradients in backward."""
    ids = [device.index if device.index is not None else shard.local_rank]
    return nn.parallel.DistributedDataParallel(
        model,
        device_ids=ids if device.type == "cuda" else None,
        # A model may leave parameters out of a step (unused branches, idle experts): that is
        # a finding to report, not an error to stop on.
        find_unused_parameters=True,
    )


def shard_model(model: nn.Module) -> None:
    """Shard ``model`` in place with FSDP2: each child module that holds parameters is one
    unit (all-gathered for its forward, resharded after), then the root (what is left).

    A container without a forward of its own (``nn.ModuleList``, ``nn.ModuleDict``) cannot be a
    unit: its children are. Units that share a parameter (an output layer tied to the
    embedding) stay with the root, since one parameter belongs to one FSDP group.
    """
    from torch.distributed.fsdp import fully_shard

    units = list(_units(model))
    owners = Counter(id(p) for unit in units for p in unit.parameters())
    for unit in units:
        if all(owners[id(p)] == 1 for p in unit.parameters()):
            fully_shard(unit)
    fully_shard(model)


def materialise(model: nn.Module, device: torch.device, seed: int) -> None:
    """Give a meta-built, sharded ``model`` storage on ``device`` (each rank its shards) and
    initialise it with each module's ``reset_parameters()``, as FSDP2's documentation does, then
    with the model's own ``init_weights()`` where it has one.

    Each rank draws its shards under its own seed: the same seed would give every shard of a
    weight the same rows. The weights are then a fresh draw of the layers' own initialisation,
    not those a whole build under ``--seed`` gives."""
    model.to_empty(device=device)
    rank = dist.get_rank() if dist.is_initialized() else 0
    devices = [device.index or 0] if device.type == "cuda" else []
    with seeded(seed * 100_003 + 7_919 * (rank + 1), devices), torch.no_grad():
        for module in model.modules():
            reset = next(
                (getattr(module, r) for r in RESETS if callable(getattr(module, r, None))), None
            )
            if reset is not None:
                reset()
        init = getattr(model, "init_weights", None)  # the model's own scheme, run on the shards
        if callable(init):
            init()


def _units(module: nn.Module) -> Iterator[nn.Module]:
    for child in module.children():
        if type(child).forward is nn.Module.forward:  # no forward: a plain container
            yield from _units(child)
        elif any(True for _ in child.parameters()):
            yield child


def is_sharded(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is an FSDP2 DTensor: this rank holds a shard of it (``to_local()``)."""
    return hasattr(tensor, "to_local")


def local_part(grad: torch.Tensor) -> tuple[torch.Tensor, int]:
    """This rank's part of a gradient and the first row it holds: an FSDP2 gradient is a
    DTensor sharded on dim 0 (torch.chunk's split: ceil(rows / world) rows per rank)."""
    if not is_sharded(grad):
        return grad, 0
    rows = grad.shape[0] if grad.dim() else 0
    world = dist.get_world_size()
    per_rank = -(-rows // world)
    return grad.to_local(), min(dist.get_rank() * per_rank, rows)  # type: ignore[attr-defined]


def whole_norms(params: Sequence[torch.Tensor]) -> list[float]:
    """Each parameter's L2 norm, of the whole parameter where FSDP2 has sharded it into a
    DTensor (each rank's shard's squares summed over the ranks, all in one ``all_reduce``)."""
    if not params:
        return []
    if any(p.is_meta for p in params):
        return [math.nan] * len(params)  # a meta-built model has no values yet
    parts = [local_part(p.detach())[0] for p in params]
    squares = torch.stack([n.double() for n in torch._foreach_norm(parts)]).square()
    sharded = [is_sharded(p) for p in params]
    if any(sharded) and dist.is_initialized():
        # A parameter every rank holds whole is counted once, from rank 0.
        keep = torch.tensor(sharded, device=squares.device) | (dist.get_rank() == 0)
        squares = squares * keep
        dist.all_reduce(squares)
    return [math.sqrt(v) for v in squares.cpu().tolist()]


def split_batch(batch: Any, shard: Shard, size: int) -> Any:
    """This rank's slice of a global batch of ``size`` rows; refused when no input has the
    batch size as its first dimension (each rank would run the whole batch: nothing to split)."""
    part = take_rows(batch, shard.rows(size), size)
    if not _has_rows(batch, size):
        raise InputError(
            f"under --shard the inputs must have the global batch size ({size}) as their first "
            "dimension, to be split over the ranks; make example_inputs(batch_size) or batches "
            "honour batch_size"
        )
    return part


def _has_rows(batch: Any, size: int) -> bool:
    if isinstance(batch, torch.Tensor):
        return bool(batch.dim()) and batch.shape[0] == size
    if isinstance(batch, Labeled):
        return _has_rows(batch.inputs, size)
    if isinstance(batch, dict):
        return any(_has_rows(v, size) for v in batch.values())
    if isinstance(batch, (list, tuple)):
        return any(_has_rows(v, size) for v in batch)
    return False


def take_rows(batch: Any, rows: slice, size: int) -> Any:
    """``batch`` with every tensor whose first dimension is the global batch ``size`` cut to
    ``rows``; other values (a scalar flag, a shared mask of another size) are kept whole."""
    if isinstance(batch, torch.Tensor):
        return batch[rows] if batch.dim() and batch.shape[0] == size else batch
    if isinstance(batch, Labeled):  # --data: inputs and targets
        return Labeled(take_rows(batch.inputs, rows, size), take_rows(batch.targets, rows, size))
    if isinstance(batch, dict):
        return {k: take_rows(v, rows, size) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and not hasattr(batch, "_fields"):
        return type(batch)(take_rows(v, rows, size) for v in batch)
    if hasattr(batch, "_fields"):  # a NamedTuple
        return type(batch)(*(take_rows(v, rows, size) for v in batch))
    return batch


class Merger:
    """Merges one step's measurements across the ranks with a single ``all_gather``.

    :meth:`merge` takes tensors of two kinds, all of the same length on every rank (the ranks
    run the same model on equal slices, so every hook fires as often everywhere): ``sums`` add
    up over the ranks, ``peaks`` take their maximum.
    """

    def __init__(self, shard: Shard) -> None:
        self.shard = shard

    def merge(
        self, sums: Sequence[torch.Tensor], peaks: Sequence[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The ranks' totals of ``sums`` and maxima of ``peaks``, each in its input's shape."""
        parts = [*sums, *peaks]
        device = next((p.device for p in parts), torch.device("cpu"))
        flat = torch.cat([p.reshape(-1).to(device, torch.float64) for p in parts])
        gathered = [torch.empty_like(flat) for _ in range(self.shard.world)]
        dist.all_gather(gathered, flat)  # the one collective of the step
        stacked = torch.stack(gathered)
        added, largest = stacked.sum(dim=0), stacked.amax(dim=0)
        out_sums: list[torch.Tensor] = []
        out_peaks: list[torch.Tensor] = []
        at = 0
        for k, part in enumerate(parts):
            n = part.numel()
            source = added if k < len(sums) else largest
            merged = source[at : at + n].reshape(part.shape)
            (out_sums if k < len(sums) else out_peaks).append(merged)
            at += n
        return out_sums, out_peaks

    def settle(self) -> None:
        """Wait until every rank is done merging. gloo's worker thread releases a finished
        ``all_gather`` (and the Python tensors it holds) some time after the call returns; on
        torch 2.2 a ``destroy_process_group()`` that comes first deadlocks with it (the main
        thread joins the worker while holding the GIL the worker needs). A barrier lets it
        finish, the GIL released while the main thread waits."""
        dist.barrier()
