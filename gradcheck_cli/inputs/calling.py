"""Calling the model on a batch and reading its loss: the types every input path shares,
:func:`call_model`, the output's primary tensor and the loss's resolution.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gradcheck_cli.choices import LossKind
from gradcheck_cli.errors import InputError

Inputs = Any  # a tensor, a tuple of positional inputs, or a dict of keyword inputs
InputFactory = Callable[[int], Inputs]
LossFn = Callable[..., torch.Tensor]  # loss_fn(output, inputs[, targets])


@dataclass(frozen=True)
class Labeled:
    """A batch of real data with its targets (``--data``): the model gets ``inputs``."""

    inputs: Inputs
    targets: torch.Tensor


def to_device(inputs: Inputs, device: torch.device) -> Inputs:
    """Move every tensor in a (nested) input structure to ``device``."""
    if isinstance(inputs, Labeled):
        return Labeled(to_device(inputs.inputs, device), inputs.targets.to(device))
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device)
    if isinstance(inputs, tuple):
        return tuple(to_device(x, device) for x in inputs)
    if isinstance(inputs, list):
        return [to_device(x, device) for x in inputs]
    if isinstance(inputs, Mapping):
        return {k: to_device(v, device) for k, v in inputs.items()}
    return inputs


def call_model(model: nn.Module, inputs: Inputs) -> Any:
    """Call the model: a tuple is positional arguments, a dict keyword arguments, unless
    ``forward`` takes one batch argument whose name is none of the dict's keys
    (``forward(self, batch)`` reading ``batch["image"]``): then the dict is that argument."""
    if isinstance(inputs, Labeled):
        inputs = inputs.inputs
    if isinstance(inputs, tuple):
        return model(*inputs)
    if isinstance(inputs, Mapping):
        if _takes_one_batch(model, inputs):
            return model(inputs)
        return model(**inputs)
    return model(inputs)


def optional_inputs_not_given(model: nn.Module, inputs: Inputs) -> tuple[str, ...]:
    """The parameters of ``forward`` that default to None and that this batch does not give.

    A multimodal or entity-aware model (pixel_values, entity_ids, bbox) runs its towers only
    when those inputs come; layers that never ran are then explained by the inputs, not the
    model.
    """
    if isinstance(inputs, Labeled):
        inputs = inputs.inputs
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return ()
    if isinstance(inputs, Mapping) and not _takes_one_batch(model, inputs):
        given = set(inputs)
    else:
        count = len(inputs) if isinstance(inputs, tuple) else 1
        given = {p.name for p in params[:count]}
    return tuple(
        p.name
        for p in params
        if p.default is None
        and p.name not in given
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    )


def _takes_one_batch(model: nn.Module, inputs: Mapping[str, Any]) -> bool:
    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return False
    params = list(signature.parameters.values())
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return False
    named = {p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL}
    positional = [
        p
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    return bool(positional) and not set(inputs) <= named


# --- losses ------------------------------------------------------------------------------------


def primary_output(output: Any) -> torch.Tensor:
    """The tensor a loss is computed from: ``logits`` or the first tensor of the output."""
    if isinstance(output, torch.Tensor):
        return output
    logits = (
        output.get("logits") if isinstance(output, Mapping) else getattr(output, "logits", None)
    )
    if isinstance(logits, torch.Tensor):
        return logits
    values = output.values() if isinstance(output, Mapping) else output
    if isinstance(values, (tuple, list)) or isinstance(output, Mapping):
        for item in values:
            if isinstance(item, torch.Tensor) and item.is_floating_point():
                return item
            if isinstance(item, (tuple, list, Mapping)):
                try:
                    return primary_output(item)
                except InputError:
                    continue
    raise InputError(
        f"the model returned {type(output).__name__} with no floating-point tensor to take a "
        "loss of; define loss_fn(output, inputs) in the model file"
    )


def own_loss(output: Any) -> torch.Tensor | None:
    """A scalar ``loss`` the output carries itself (Hugging Face models given labels)."""
    loss = output.get("loss") if isinstance(output, Mapping) else getattr(output, "loss", None)
    if isinstance(loss, torch.Tensor) and loss.numel() == 1 and loss.is_floating_point():
        return loss.reshape(())
    return None


def resolve_loss(
    kind: LossKind,
    output: Any,
    targets: torch.Tensor | None = None,
    *,
    rows: tuple[slice, int] | None = None,
) -> tuple[LossKind | str, torch.Tensor]:
    """Compute the loss for ``output``; returns the loss actually used (for the report) too.

    ``auto``: the output's own ``.loss`` when it has one; cross-entropy for logits (2-D
    ``(N, C)``, 3-D ``(N, L, C)`` with classes last, 4-D+ ``(N, C, ...)``) against integer
    ``targets`` from ``--data``, or random labels; mean squared error against float ``targets``
    or a standard normal target otherwise. ``rows`` (this rank's slice of a global batch of
    that many rows, under torchrun) draws the random targets for the whole batch and keeps the
    slice's, so every rank's targets are those of one process on the whole batch.
    """
    if kind is LossKind.AUTO:
        carried = own_loss(output)
        if carried is not None:
            return "model-output-loss", carried
    y = primary_output(output)
    if kind is LossKind.AUTO:
        classes = class_dim(y)
        integer_targets = targets is not None and not targets.is_floating_point()
        if targets is not None:
            kind = (
                LossKind.CROSS_ENTROPY if integer_targets and classes is not None else LossKind.MSE
            )
        else:
            kind = LossKind.CROSS_ENTROPY if classes is not None else LossKind.MSE
    y = y.float()
    if kind is LossKind.SUM:
        return kind, y.sum()
    if kind is LossKind.MSE:
        target = targets.float() if targets is not None else _drawn(torch.randn, y.shape, y, rows)
        if target.shape != y.shape:
            raise InputError(
                f"the --data targets have shape {tuple(target.shape)} but the output "
                f"{tuple(y.shape)}; use --loss or define loss_fn"
            )
        return kind, nn.functional.mse_loss(y, target)
    dim = class_dim(y)
    if dim is None:
        raise InputError(
            f"cross-entropy needs logits with a class dimension, but the output has shape "
            f"{tuple(y.shape)}; use --loss mse or define loss_fn"
        )
    if dim != 1:
        y = y.movedim(dim, 1)
    target_shape = (y.shape[0], *y.shape[2:])
    if targets is not None:
        if tuple(targets.shape) != target_shape or targets.is_floating_point():
            raise InputError(
                f"cross-entropy needs integer targets of shape {target_shape}, but the --data "
                f"targets are {str(targets.dtype).removeprefix('torch.')} {tuple(targets.shape)}"
            )
        labels = targets.long()
        used = labels[labels != -100]  # cross-entropy's ignore_index
        if used.numel() and (int(used.min()) < 0 or int(used.max()) >= y.shape[1]):
            raise InputError(
                f"the --data targets must be class indices in [0, {y.shape[1]}) for an output "
                f"of {y.shape[1]} classes (or -100 to ignore a position), but they run from "
                f"{int(used.min())} to {int(used.max())}"
            )
        return LossKind.CROSS_ENTROPY, nn.functional.cross_entropy(y, labels)
    classes = y.shape[1]
    target = _drawn(
        lambda shape, **kw: torch.randint(0, classes, shape, **kw), target_shape, y, rows
    )
    return LossKind.CROSS_ENTROPY, nn.functional.cross_entropy(y, target)


def _drawn(
    draw: Callable[..., torch.Tensor],
    shape: Sequence[int],
    like: torch.Tensor,
    rows: tuple[slice, int] | None,
) -> torch.Tensor:
    """Random targets of ``shape``; with ``rows``, this slice of those of the whole batch (when
    the output is batch-first: its first dimension is the slice's length)."""
    part, whole = rows if rows is not None else (slice(0, 0), 0)
    if rows is None or not shape or shape[0] != part.stop - part.start:
        return draw(tuple(shape), device=like.device)
    return draw((whole, *shape[1:]), device=like.device)[part]


def class_dim(y: torch.Tensor) -> int | None:
    if not y.is_floating_point() or y.dim() < 2:
        return None
    dim = 2 if y.dim() == 3 else 1
    return dim if y.shape[dim] > 1 else None
