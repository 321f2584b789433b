"""The interface every remedy implements, and what remedies share.

A remedy never touches the model: ``propose(model, context)`` reads it and the probe and returns
the :class:`~gradcheck_cli.remedies.edits.Edit` records that would fix it (a :class:`Proposal`),
or :class:`NotApplicable` with the reason. :func:`~gradcheck_cli.remedies.edits.apply_edit` does
the rewriting, always on a copy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from gradcheck_cli.choices import Activation, BranchInit, InitScheme
from gradcheck_cli.findings import Report, Severity
from gradcheck_cli.layers import RELU_FAMILY, is_saturating, is_weight_type
from gradcheck_cli.remedies.edits import Edit
from gradcheck_cli.remedies.probe import Call, Probe


@dataclass(frozen=True)
class FixOptions:
    """User choices that shape the remedies."""

    activation: Activation = Activation.RELU
    init: InitScheme = InitScheme.AUTO
    branch_init: BranchInit = BranchInit.SCALE
    force_reinit: bool = False
    weights_given: bool = False
    reset_biases: bool = False  # re-initialisation zeroes deliberate biases too


@dataclass(frozen=True)
class RemedyContext:
    """What a remedy may read: the probe of the model and the diagnosis before any fix."""

    probe: Probe
    report: Report
    options: FixOptions


@dataclass(frozen=True)
class Proposal:
    """The edits a remedy would make, and notes on what it left and why."""

    remedy: str
    edits: tuple[Edit, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class NotApplicable:
    """A remedy that cannot apply to this model, with the reason."""

    remedy: str
    reason: str


class Remedy:
    """Base class; subclasses set ``id`` and ``summary`` and implement ``propose``."""

    id: ClassVar[str]
    summary: ClassVar[str]
    reinitialises: ClassVar[bool] = False

    def propose(self, model: nn.Module, context: RemedyContext) -> Proposal | NotApplicable:
        """The edits for ``model``, or why there are none. Pure: never changes the model."""
        raise NotImplementedError


def leaf_calls(model: nn.Module, probe: Probe, *, every: bool = False) -> list[Call]:
    """The first call of every leaf module that ran, in execution order.

    With ``every``, each call: a module called several times (one ``self.act = nn.Sigmoid()``
    after every layer) appears at each of its call sites, so a remedy sees every layer that
    feeds it.
    """
    leaves = {name for name, m in model.named_modules() if not any(True for _ in m.children())}
    seen: set[str] = set()
    calls = []
    for call in probe.calls:
        if call.name in leaves and (every or call.name not in seen):
            seen.add(call.name)
            calls.append(call)
    return calls


def following_activation(calls: list[Call], index: int) -> Call | None:
    """The first activation after ``calls[index]`` and before the next weight layer."""
    for call in calls[index + 1 :]:
        if is_weight_type(call.type):
            return None
        if (
            issubclass(call.type, RELU_FAMILY)
            or is_saturating(call.type)
            or issubclass(call.type, nn.ReLU6)
        ):
            return call
    return None


def nonlinearity_of(activation: type[nn.Module]) -> str | None:
    """The name ``torch.nn.init.calculate_gain`` uses for an activation's gain."""
    if issubclass(activation, nn.LeakyReLU):
        return "leaky_relu"
    if issubclass(activation, (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.ELU, nn.Hardswish, nn.Mish)):
        return "relu"  # GELU/SiLU/ELU/Hardswish/Mish behave like ReLU for variance at init
    if issubclass(activation, (nn.Tanh, nn.Hardtanh, nn.Softsign)):
        return "tanh"
    if issubclass(activation, (nn.Sigmoid, nn.Hardsigmoid)):
        return "sigmoid"
    return None


def deliberate_bias(module: nn.Module) -> str | None:
    """How ``module``'s bias looks set on purpose, or None: one non-zero value in every entry
    (a highway gate's -2, a forget gate's 1), or entries beyond 1.5x the bound of PyTorch's
    default init, U(+-1/sqrt(fan_in)). Zeros and default draws are not deliberate."""
    bias = getattr(module, "bias", None)
    weight = getattr(module, "weight", None)
    if not isinstance(bias, torch.Tensor) or not isinstance(weight, torch.Tensor):
        return None
    values = bias.detach().float()
    if values.numel() == 0 or not bool(values.isfinite().all()):
        return None
    top = float(values.abs().max())
    if top == 0:
        return None
    if values.numel() > 1 and float(values.max() - values.min()) <= 1e-6 * top:
        return f"every entry {float(values[0]):.3g}"
    fan_in = weight[0].numel() if weight.dim() > 1 else weight.numel()
    if top > 1.5 / math.sqrt(max(fan_in, 1)):
        return f"entries up to {top:.3g}, beyond the default init's {1 / math.sqrt(fan_in):.2g}"
    return None


def init_edit(
    model: nn.Module,
    name: str,
    args: dict[str, object],
    remedy: str,
    context: RemedyContext,
    kept: list[str],
) -> Edit:
    """An ``init`` edit of layer ``name``: weights redrawn, bias zeroed, except a bias set
    deliberately (:func:`deliberate_bias`), which is kept, and named in ``kept`` (for
    :func:`kept_note`), unless ``--reset-biases`` or the diagnosis blames it: the layer, or the
    activation it feeds, is named by a dead-units, saturation or no-gradient warning or error
    (a bias of -3 before a ReLU is what kills its units)."""
    why = deliberate_bias(model.get_submodule(name))
    if why is not None and not context.options.reset_biases and not _blamed(model, name, context):
        kept.append(f"{name} ({why})")
        args = {**args, "keep_bias": True}
    return Edit("init", name, args, remedy)


_BLAMING = frozenset({"dead-units", "saturation", "no-gradient"})


def _blamed(model: nn.Module, name: str, context: RemedyContext) -> bool:
    """Whether a finding the bias could cause names layer ``name`` or the next module called
    after it (its activation)."""
    named = {
        layer
        for f in context.report.findings
        if f.id in _BLAMING
        and f.severity.rank >= Severity.WARNING.rank
        and f.evidence.get("reason") != "cut"
        for layer in f.layers
    }
    calls = [c.name for c in leaf_calls(model, context.probe)]
    after = calls[calls.index(name) + 1] if name in calls[:-1] else None
    return name in named or after in named


def kept_note(kept: list[str]) -> tuple[str, ...]:
    """One note for the biases :func:`init_edit` kept, or none."""
    if not kept:
        return ()
    more = f" and {len(kept) - 3} more" if len(kept) > 3 else ""
    return (
        f"kept the biases of {len(kept)} layer(s) set deliberately: {', '.join(kept[:3])}{more} "
        "(--reset-biases zeroes them)",
    )


def reinit_refusal(context: RemedyContext) -> str | None:
    """Why re-initialising is refused: a trained checkpoint was loaded without --force-reinit."""
    if context.options.weights_given and not context.options.force_reinit:
        return (
            "--weights was given: re-initialising a trained model destroys it; pass "
            "--force-reinit to do it anyway"
        )
    return None


def propose_recurrent(
    model: nn.Module,
    context: RemedyContext,
    remedy: str,
    kinds: Callable[[nn.Module], bool],
    what: str,
) -> Proposal | NotApplicable:
    """One ``remedy`` edit (op named as the remedy) for each module ``kinds`` accepts whose
    time profile was measured, with its sequence length; refused after ``--weights`` unless
    ``--force-reinit``."""
    refusal = reinit_refusal(context)
    if refusal is not None:
        return NotApplicable(remedy, refusal)
    lengths = {
        profile.module: len(profile.norms)
        for profile in context.report.temporal
        if profile.method == "last step"
    }
    edits = [
        Edit(remedy, name, {"steps": lengths[name]}, remedy)
        for name, module in model.named_modules()
        if kinds(module) and name in lengths
    ]
    if not edits:
        return NotApplicable(remedy, f"no {what} with a measured time profile (10+ steps)")
    return Proposal(remedy, tuple(edits))
