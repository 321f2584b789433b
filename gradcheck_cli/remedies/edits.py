"""The edit record every remedy writes its rewrite as, and the model surgery the edit ops share.

A remedy expresses its rewrite as a list of :class:`Edit` records; the ops that carry them out are
registered in :mod:`gradcheck_cli.remedies.ops` (one function each, with its arguments and what it
overwrites), which :func:`gradcheck_cli.remedies.plan.apply_plan` replays on a freshly built
model. All replacements go through :func:`replace_submodule`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from gradcheck_cli.errors import UsageError


class PlanError(UsageError):
    """A plan does not fit the model it is applied to."""


@dataclass(frozen=True)
class Edit:
    """One rewrite: ``op`` on module ``target`` (a dotted name; "" is the root) with ``args``."""

    op: str
    target: str
    args: Mapping[str, Any] = field(default_factory=dict)
    remedy: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for plan.yaml."""
        return {
            "op": self.op,
            "target": self.target,
            "args": dict(self.args),
            "remedy": self.remedy,
        }


def get_submodule(model: nn.Module, target: str) -> nn.Module:
    """``model.get_submodule`` with a :class:`PlanError` that names the missing module."""
    try:
        return model.get_submodule(target)
    except AttributeError:
        raise PlanError(f"the model has no submodule '{target}'") from None


def replace_submodule(model: nn.Module, target: str, new: nn.Module) -> nn.Module:
    """Put ``new`` where ``target`` is (in a Sequential, ModuleList or as an attribute).

    Returns the replaced module. The root ("") cannot be replaced in place.
    """
    if not target:
        raise PlanError("the root module cannot be replaced in place")
    parent_name, _, child = target.rpartition(".")
    parent = get_submodule(model, parent_name)
    old = get_submodule(model, target)
    if isinstance(parent, (nn.Sequential, nn.ModuleList)) and child.isdigit():
        parent[int(child)] = new
    else:
        setattr(parent, child, new)
    return old


# PyTorch's transformer layers, whose LayerNorms sit after each residual sum (Post-LN) unless
# norm_first: the flag moves them to the branch inputs (Pre-LN) with the same parameters.
POST_LN_TYPES = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
# SIREN's first-layer frequency (Sitzmann et al. 2020, section 3.2): sin(30 W x) with W drawn
# from U(+-1/fan_in) spans several periods over inputs in [-1, 1].
SIREN_W0 = 30.0


def chrono_init(module: nn.LSTM | nn.GRU, steps: int, generator: torch.Generator | None) -> None:
    """Chrono init (Tallec & Ollivier 2018): gate biases for memories of up to ``steps`` steps.

    LSTM (gates input, forget, cell, output): forget bias ``log(U(1, steps - 1))``, input bias
    its negative. GRU (gates reset, update, new): the update-gate bias gets the same draw, so the
    old state is kept. All other biases are zero. Draws on the CPU from ``generator``.
    """
    if not module.bias:
        raise PlanError("chrono init needs a recurrent module with biases")
    hidden = module.hidden_size
    high = max(2.0, float(steps - 1))
    with torch.no_grad():
        for name, bias in module.named_parameters():
            if not name.startswith("bias"):
                continue
            fresh = torch.zeros(bias.shape, dtype=torch.float32)
            if name.startswith("bias_ih"):
                draw = torch.empty(hidden).uniform_(1.0, high, generator=generator).log()
                fresh[hidden : 2 * hidden] = draw  # LSTM forget gate; GRU update gate
                if isinstance(module, nn.LSTM):
                    fresh[:hidden] = -draw
            bias.copy_(fresh)


def orthogonal(
    shape: torch.Size | tuple[int, ...], gain: float, generator: torch.Generator | None
) -> torch.Tensor:
    """A (flattened) orthogonal matrix times ``gain`` (Saxe et al. 2014), times
    ``sqrt(rows / columns)`` when it has more rows than columns.

    Orthonormal columns keep the norm of the input, which spreads it over more outputs: the
    correction keeps each output's variance that of an input, as ``N(0, gain^2 / fan_in)`` does,
    so a widening first layer does not shrink the signal.
    """
    fresh = torch.empty(shape, dtype=torch.float32)
    nn.init.orthogonal_(fresh, gain, generator=generator)
    rows, columns = shape[0], fresh[0].numel()
    if rows > columns:
        fresh.mul_(math.sqrt(rows / columns))
    return fresh
