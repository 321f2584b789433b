"""Statistics of many small tensors in a few kernels rather than one (or four) per tensor.

On a CPU every tensor operation costs 2-4 us of dispatch whatever its size, about what a 64-wide
Linear costs, so a deep, narrow model measured one call at a time pays more for its statistics
than for its layers (issue 14). Norms go through ``torch._foreach_norm``, one call for all
tensors of a dtype. Counts (dead units, saturated values), several operations per tensor,
are taken on stacks of the tensors of one shape: one copy and a few reductions per group,
the same values, in at least the precision of the per-tensor operations they replace. Large
tensors are not stacked (a copy that size is not free, and their own cost dwarfs a launch).

Each function returns one float64 value per input tensor, in input order, on the device of the
first tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

# Tensors up to this many elements are stacked with others of their shape for counting; larger
# ones are counted on their own. 16K float32 values, 64 KB: on a CPU, copying more than that
# (cold, at the end of the step) costs more than the three operations it saves.
STACKED = 1 << 14

Key = tuple[object, ...]


def _grouped(
    tensors: Sequence[torch.Tensor],
    keys: Sequence[Key] | None,
    reduce_group: Callable[[torch.Tensor, Key], torch.Tensor],
    reduce_one: Callable[[torch.Tensor, Key], torch.Tensor],
) -> torch.Tensor:
    """Apply ``reduce_group`` to each stack of small tensors sharing a shape (and a key) and
    ``reduce_one`` to the others; the results back in input order, as one float64 vector.

    Tensors of one shape but different dtypes stack in the promoted dtype (float32 with
    float16 is float32; anything with float64 is float64), which is at least the precision
    each would be reduced in alone. Tensors on different devices do not stack: they are
    reduced one at a time.
    """
    device = tensors[0].device
    groups: dict[Any, list[int]] = {}
    single: list[int] = []
    for k, t in enumerate(tensors):  # the one Python pass over every tensor: kept lean
        if t.numel() > STACKED:
            single.append(k)
            continue
        shape_key = t.shape if keys is None else (t.shape, keys[k])
        members = groups.get(shape_key)
        if members is None:
            groups[shape_key] = [k]
        else:
            members.append(k)
    parts: list[torch.Tensor] = []
    order: list[int] = []
    for grouped, members in groups.items():
        key: Key = () if keys is None else grouped[1]
        group = [tensors[k] for k in members]
        try:
            # torch.cat along the first dimension then a view: the same (n, *shape) stack,
            # without the view per tensor that torch.stack makes (a third of its cost here).
            shape = group[0].shape
            stacked = torch.cat(group).view(len(group), *shape) if shape else torch.stack(group)
        except RuntimeError:  # on different devices
            single.extend(members)
            continue
        parts.append(reduce_group(stacked, key).to(device, torch.float64))
        order.extend(members)
    for k in single:
        one = tensors[k].unsqueeze(0)
        parts.append(reduce_one(one, () if keys is None else keys[k]).to(device, torch.float64))
        order.append(k)
    return _in_input_order(torch.cat(parts), order)


def _in_input_order(values: torch.Tensor, order: list[int]) -> torch.Tensor:
    """``values[j]`` belongs to input ``order[j]``: put them back in input order."""
    if order == sorted(order):
        return values
    position = [0] * len(order)
    for at, k in enumerate(order):
        position[k] = at
    return values[torch.tensor(position, device=values.device)]


def _norm_dtype(dtype: torch.dtype) -> torch.dtype:
    # float64 values keep float64 (vector_norm will not narrow them); the rest accumulate in
    # float32, half precision included.
    return torch.float64 if dtype == torch.float64 else torch.float32


def norms(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The L2 norm of each tensor (as ``torch.linalg.vector_norm``), as float64 values.

    One ``torch._foreach_norm`` per dtype and device, not a stack: a norm needs no copy, and
    on a CPU, at the end of the step, reading each tensor where it lies costs less than
    copying it first; on CUDA it is one fused kernel for all of them. Half-precision tensors
    accumulate in float32 (a float16 norm overflows past 65504).

    >>> norms([torch.tensor([3.0, 4.0]), torch.ones(2, 2), torch.tensor([0.0, 1.0])]).tolist()
    [5.0, 2.0, 1.0]
    """
    if not tensors:
        return torch.zeros(0, dtype=torch.float64)
    device = tensors[0].device
    groups: dict[tuple[torch.dtype, torch.device], list[int]] = {}
    for k, t in enumerate(tensors):
        groups.setdefault((t.dtype, t.device), []).append(k)
    parts: list[torch.Tensor] = []
    order: list[int] = []
    for (dtype, _), members in groups.items():
        group = [tensors[k] for k in members]
        parts.append(torch.stack(_foreach_norm(group, dtype)).to(device, torch.float64))
        order.extend(members)
    values = torch.cat(parts) if len(parts) > 1 else parts[0]
    return values if len(groups) == 1 else _in_input_order(values, order)


def _foreach_norm(tensors: list[torch.Tensor], dtype: torch.dtype) -> list[torch.Tensor]:
    if dtype in (torch.float32, torch.float64):
        return list(torch._foreach_norm(tensors))
    try:  # torch >= 2.4 accumulates in the dtype asked for
        return list(torch._foreach_norm(tensors, 2, dtype=torch.float32))  # type: ignore[call-arg]
    except TypeError:
        return [torch.linalg.vector_norm(t, dtype=torch.float32) for t in tensors]


def dead_units(tensors: Sequence[torch.Tensor], unit_dims: Sequence[int]) -> torch.Tensor:
    """How many units (indices along ``unit_dims[k]``) of each tensor are <= 0 everywhere.

    >>> x = torch.tensor([[1.0, -1.0, 0.0], [2.0, -3.0, -1.0]])
    >>> dead_units([x, x.T], [1, 0]).tolist()
    [2.0, 2.0]
    """
    if not tensors:
        return torch.zeros(0, dtype=torch.float64)

    def reduce(stacked: torch.Tensor, key: Key) -> torch.Tensor:
        unit_dim = int(key[0]) + 1  # type: ignore[call-overload]
        other = [d for d in range(1, stacked.dim()) if d != unit_dim]
        peak = stacked.amax(dim=other) if other else stacked
        return (peak <= 0).sum(dim=1)

    return _grouped(tensors, [(d,) for d in unit_dims], reduce, reduce)


def outside(tensors: Sequence[torch.Tensor], bounds: Sequence[tuple[float, float]]) -> torch.Tensor:
    """How many values of each tensor lie at or beyond its bounds ``(lo, hi)``.

    >>> outside([torch.tensor([0.0, 0.5, 1.0])], [(0.01, 0.99)]).tolist()
    [2.0]
    """
    if not tensors:
        return torch.zeros(0, dtype=torch.float64)

    def reduce(stacked: torch.Tensor, key: Key) -> torch.Tensor:
        lo, hi = float(key[0]), float(key[1])  # type: ignore[arg-type]
        flat = stacked.reshape(stacked.shape[0], -1)
        return ((flat <= lo) | (flat >= hi)).sum(dim=1)

    return _grouped(tensors, list(bounds), reduce, reduce)
