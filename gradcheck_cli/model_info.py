"""What a report says about the model itself: its name, type and parameter counts, and which
parts of it are frozen (``requires_grad=False``), as one :class:`ModelInfo`.

A frozen part is listed, not judged: freezing a backbone is a common, deliberate choice, but a
part frozen by mistake never trains, so the report header names what is frozen and how much.
"""

from __future__ import annotations

from torch import nn

from gradcheck_cli.findings import ModelInfo
from gradcheck_cli.stats import collapse_names


def describe_model(model: nn.Module, name: str | None = None) -> ModelInfo:
    """The :class:`ModelInfo` of ``model``, reported as ``name`` (default: its class name)."""
    params = list(model.parameters())
    return ModelInfo(
        name=name or type(model).__name__,
        type=type(model).__name__,
        parameters=sum(p.numel() for p in params),
        trainable=sum(p.numel() for p in params if p.requires_grad),
        frozen=frozen_parts(model),
    )


def frozen_parts(model: nn.Module) -> tuple[tuple[str, int], ...]:
    """Frozen parameters by the largest module all of whose parameters are frozen (``encoder.*``)
    or by their own name, each with its number of values, in registration order. Parameters
    shared by several modules count once, under their first name."""
    named = list(model.named_parameters())
    frozen = [(n, p) for n, p in named if not p.requires_grad]
    labels = collapse_names([n for n, _ in frozen], [n for n, _ in named])
    parts: dict[str, int] = {}
    for name, p in frozen:
        parts[labels[name]] = parts.get(labels[name], 0) + p.numel()
    return tuple(parts.items())
