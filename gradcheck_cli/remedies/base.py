"""The interface every remedy implements, and what remedies share.

A remedy never touches the model: ``propose(model, context)`` reads it and the probe and returns
the :class:`~gradcheck_cli.remedies.edits.Edit` records that would fix it (a :class:`Proposal`),
or :class:`NotApplicable` with the reason. :func:`~gradcheck_cli.remedies.edits.apply_edit` does
the rewriting, always on a copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from gradcheck_cli.choices import Activation, BranchInit, InitScheme
from gradcheck_cli.findings import Report
from gradcheck_cli.remedies.edits import Edit
from gradcheck_cli.remedies.layers import is_weight_type
from gradcheck_cli.remedies.probe import Call, Probe


@dataclass(frozen=True)
class FixOptions:
    """User choices that shape the remedies."""

    activation: Activation = Activation.RELU
    init: InitScheme = InitScheme.AUTO
    branch_init: BranchInit = BranchInit.SCALE
    force_reinit: bool = False
    weights_given: bool = False


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


NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.modules.instancenorm._InstanceNorm,
)
RELU_FAMILY: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.GELU,
    nn.SiLU,
    nn.ELU,
    nn.Hardswish,  # MobileNetV3, LCNet
    nn.Mish,
)
# ReLU6 is a Hardtanh subclass but is a ReLU-family activation: it is checked first.
SATURATING: tuple[type[nn.Module], ...] = (
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardtanh,
    nn.Hardsigmoid,
    nn.Softsign,
)


def is_saturating(kind: type[nn.Module]) -> bool:
    """Sigmoid, Tanh, Hardtanh (not ReLU6), Hardsigmoid, Softsign."""
    return issubclass(kind, SATURATING) and not issubclass(kind, nn.ReLU6)


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
