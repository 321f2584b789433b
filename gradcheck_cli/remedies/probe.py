"""A probe forward pass: which modules run, in what order, with what input and output shapes,
and the structure the autograd graph shows (:mod:`gradcheck_cli.remedies.structure`).

Remedies decide where they apply from a real forward pass (a block is shape-preserving only if
its output has its input's shape on real inputs). The hooks live inside one ExitStack and are
removed even if the forward pass raises; the probe runs under ``torch.no_grad`` in eval mode, and
the model's mode is restored.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gradcheck_cli.capture import restore_training
from gradcheck_cli.inputs.calling import Inputs, call_model
from gradcheck_cli.remedies.structure import Structure, read_structure
from gradcheck_cli.snapshot import preserved


@dataclass(frozen=True)
class Call:
    """One module call seen by the probe."""

    name: str
    type: type[nn.Module]
    in_shape: tuple[int, ...] | None
    out_shape: tuple[int, ...] | None
    plain: bool = True  # its input and output are single tensors (not tuples or dicts)


@dataclass(frozen=True)
class Probe:
    """Module calls in the order their forward passes finished (children before parents)."""

    calls: tuple[Call, ...]
    batch_size: int
    structure: Structure = Structure()

    def first(self, name: str) -> Call | None:
        """The first call of module ``name``, or None if it never ran."""
        return next((c for c in self.calls if c.name == name), None)

    def ran(self, name: str) -> bool:
        """Whether module ``name`` ran at all."""
        return self.first(name) is not None


def _shape(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return tuple(value[0].shape)
    return None


def probe(model: nn.Module, inputs: Inputs) -> Probe:
    """Run one forward pass and record every module call (leaves and containers)."""
    calls: list[Call] = []
    training = {m: m.training for m in model.modules()}
    with contextlib.ExitStack() as stack:
        stack.callback(restore_training, training)
        for name, module in model.named_modules():
            if isinstance(module, torch.jit.ScriptModule):
                continue

            def hook(mod: nn.Module, args: Any, output: Any, name: str = name) -> None:
                calls.append(
                    Call(
                        name,
                        type(mod),
                        _shape(args[0]) if args else None,
                        _shape(output),
                        plain=len(args) == 1
                        and isinstance(args[0], torch.Tensor)
                        and isinstance(output, torch.Tensor),
                    )
                )

            stack.callback(module.register_forward_hook(hook).remove)
        model.eval()
        # An eval-mode pass still runs forward's own assignments (self.last = y, counters).
        with torch.no_grad(), preserved(model):
            call_model(model, inputs)
    first = next((c.in_shape for c in calls if c.in_shape), None)
    try:
        structure = read_structure(model, inputs)
    except Exception:  # a model that runs only without autograd: remedies fall back on calls
        structure = Structure()
    return Probe(calls=tuple(calls), batch_size=first[0] if first else 0, structure=structure)
