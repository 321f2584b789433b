"""The arithmetic that turns raw step totals into per-layer statistics.

:mod:`gradcheck_cli.hooks` collects raw per-step totals (sums of squares, counts) as tensors and
brings them to the host once per step as a :class:`StepRecord`; :func:`aggregate` turns those
records over steps into one :class:`~gradcheck_cli.stats.LayerStats` per layer. It never touches
hooks or modules, so every function here is tested with hand-built numbers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from gradcheck_cli.stats import (
    FirstNonFinite,
    LayerKind,
    LayerStats,
    Measured,
    ModelStats,
    NonFinite,
    Skipped,
    Summary,
)


@dataclass(frozen=True)
class SoftmaxRows:
    """A functional softmax (``F.softmax``, ``Tensor.softmax``) seen in the graph: how many of
    its rows put 99% or more on one entry, and the layers whose outputs feed its logits."""

    feeders: tuple[int, ...]
    saturated: int
    rows: int


@dataclass(frozen=True)
class GraphFacts:
    """Per-layer facts read off one loss's autograd graph, indexed like the recorder's layers.

    ``depth`` is 0 for layers the loss does not reach; ``successor`` is -1 for output layers
    and unreached ones.
    """

    depth: tuple[int, ...]
    successor: tuple[int, ...]
    is_input: tuple[bool, ...]
    residual_scale: tuple[bool, ...]
    attention_score: tuple[bool, ...] = ()
    softmax: tuple[SoftmaxRows, ...] = ()  # softmax calls that no nn.Softmax module made
    feeds_norm: tuple[bool, ...] = ()  # output reaches a normaliser through reshapes alone
    partly_read: tuple[bool, ...] = ()  # every route to the loss keeps only part of the output

    @classmethod
    def unknown(cls, layers: int) -> GraphFacts:
        """No graph was traced (``watch()``, TorchScript): every layer at depth 0."""
        return cls(
            (0,) * layers, (-1,) * layers, (False,) * layers, (False,) * layers, (False,) * layers
        )


@dataclass(frozen=True)
class LayerInfo:
    """Static facts about a measured module, known before any step runs."""

    name: str
    type: str
    kind: LayerKind
    params: int
    trainable: int
    weight_norm: float
    zero_weights: bool
    near_zero_weights: bool = False
    init_norm: float = 0.0  # the norm of its weight matrices at the standard scale 1/sqrt(fan_in)
    scale_like: bool = False  # every trainable parameter a scalar or per-channel vector


@dataclass(frozen=True)
class StepRecord:
    """The raw totals of one step for every layer, brought to the host in one transfer.

    Every sequence is indexed by layer (the order of :class:`LayerInfo` in the recorder).
    """

    loss: float
    order: tuple[int, ...]  # first-call position in this step's forward pass, -1 if not called
    calls: tuple[int, ...]
    act_sumsq: tuple[float, ...]
    act_numel: tuple[int, ...]
    out_grad_sumsq: tuple[float, ...]
    out_grad_numel: tuple[int, ...]
    grad_sumsq: tuple[float, ...]
    grad_numel: tuple[int, ...]
    grad_none: tuple[bool, ...]
    used_weight_sumsq: tuple[float, ...]  # embeddings: squared norm of the rows that got gradient
    dead: tuple[float, ...]
    units: tuple[int, ...]
    saturated: tuple[float, ...]
    sat_numel: tuple[int, ...]
    feeds_norm: tuple[bool, ...]
    nonfinite_act: tuple[int, ...] | None = None  # only counted when a step had NaN/Inf
    nonfinite_out_grad: tuple[int, ...] | None = None
    nonfinite_grad: tuple[int, ...] | None = None
    first_nonfinite_module: str | None = None  # innermost module whose output had NaN/Inf
    underflow: tuple[int, ...] | None = None  # gradient values fp16 would flush (--amp fp16)
    act_rows: tuple[int, ...] | None = None  # rows (tokens, samples) of the outputs, all calls
    dead_worst: tuple[float, ...] | None = None  # the largest dead fraction of any one call
    saturated_worst: tuple[float, ...] | None = None  # likewise, saturated
    in_sumsq: tuple[float, ...] | None = None  # weight layers: squared norm of their inputs
    in_numel: tuple[int, ...] | None = None
    # The weights' norms at this step, when they change between measured steps (watch() in a
    # training loop); None: the recorder's static norms hold for every step.
    weight_norm: tuple[float, ...] | None = None

    @property
    def anomalous(self) -> bool:
        """True when the loss or any total is NaN/Inf, so the step deserves an exact count."""
        totals = (self.loss, *self.act_sumsq, *self.out_grad_sumsq, *self.grad_sumsq)
        return not all(math.isfinite(v) for v in totals)


def _weight_norm(record: StepRecord, i: int, info: LayerInfo) -> float:
    """Layer ``i``'s weight norm at ``record``'s step: its own when it carries them, else the
    recorder's static one."""
    return record.weight_norm[i] if record.weight_norm is not None else info.weight_norm


def _rms(sumsq: float, numel: int) -> float:
    return math.sqrt(sumsq / numel) if numel else math.nan


def _ratio(num: float, den: float) -> float:
    if den == 0.0:
        return math.inf if num > 0 else math.nan
    return num / den


def aggregate(
    infos: Sequence[LayerInfo],
    records: Sequence[StepRecord],
    shadow: Sequence[StepRecord] = (),
    structure: GraphFacts | None = None,
) -> ModelStats:
    """Aggregate step records into per-layer statistics, ordered by forward execution.

    ``shadow`` records come from full-precision passes that only count fp16 underflow;
    ``structure`` is what the autograd graph of a loss said about depth and residual scales.
    """
    layers = [_aggregate_layer(i, info, records) for i, info in enumerate(infos)]
    if structure is not None:
        layers = [_with_structure(layer, i, structure, infos) for i, layer in enumerate(layers)]
        layers += _softmax_layers(structure, infos, layers)
    if shadow:
        layers = [_with_underflow(layer, i, shadow) for i, layer in enumerate(layers)]
    called = sorted((l for l in layers if l.order >= 0), key=lambda l: l.order)
    uncalled = [l for l in layers if l.order < 0]
    ordered = [_evolve(layer, order=pos) for pos, layer in enumerate([*called, *uncalled])]
    return ModelStats(
        layers=tuple(ordered),
        losses=tuple(r.loss for r in records),
        steps=len(records),
        first_nonfinite=_first_nonfinite(infos, records),
    )


# Observations (samples x positions) per unit needed to call a unit dead: at 8, a live unit
# that is positive half the time looks dead by chance with probability 1/256.
MIN_OBSERVATIONS = 8

# Near zero: below this fraction of the scale a weight starts at (1/sqrt(fan_in) for a matrix,
# 1 for a normaliser's gain or a residual scale). A residual scale below it (LayerScale starts
# at 1e-6 to 0.1, ReZero at 0) has its branch nearly switched off by design.
NEAR_ZERO = 0.05


def _evolve(layer: LayerStats, **changes: Any) -> LayerStats:
    """``dataclasses.replace(layer, **changes)`` for the fields set here, without running the
    frozen ``__init__`` again (one ``object.__setattr__`` per field, about 8 us for LayerStats'
    40 fields, twice per layer per diagnosis). LayerStats has no ``__post_init__`` to skip."""
    unknown = changes.keys() - layer.__dict__.keys()
    if unknown:
        raise TypeError(f"LayerStats has no field {sorted(unknown)[0]!r}")
    new = object.__new__(LayerStats)
    new.__dict__.update(layer.__dict__, **changes)
    return new


def _with_structure(
    layer: LayerStats, i: int, structure: GraphFacts, infos: Sequence[LayerInfo]
) -> LayerStats:
    successor = structure.successor[i]
    residual = structure.residual_scale[i]
    rms = infos[i].weight_norm / math.sqrt(infos[i].params) if infos[i].params else 0.0
    return _evolve(
        layer,
        depth=structure.depth[i],
        successor=infos[successor].name if successor >= 0 else None,
        is_input=structure.is_input[i],
        residual_scale=residual,
        attention_score=bool(structure.attention_score) and structure.attention_score[i],
        feeds_norm=layer.feeds_norm or (bool(structure.feeds_norm) and structure.feeds_norm[i]),
        near_zero_weights=layer.near_zero_weights or (residual and rms < NEAR_ZERO),
        partly_read=bool(structure.partly_read) and structure.partly_read[i],
    )


def _softmax_layers(
    structure: GraphFacts, infos: Sequence[LayerInfo], layers: Sequence[LayerStats]
) -> list[LayerStats]:
    """One activation row per functional softmax, named ``<module>.softmax()`` after the module
    that holds the layers feeding its logits, ordered after the last of them (step 0 only)."""
    found = []
    for rows in structure.softmax:
        names = [infos[i].name.split(".") for i in rows.feeders]
        common: list[str] = []
        for parts in zip(*names, strict=False) if names else ():
            if len(set(parts)) != 1:
                break
            common.append(parts[0])
        if names and len(common) == min(len(n) for n in names):
            common = common[:-1]  # a single feeder: its parent module holds the softmax
        order = max((layers[i].order for i in rows.feeders), default=-1)
        fraction = rows.saturated / rows.rows if rows.rows else 0.0
        measured: Measured = (
            Summary(fraction, fraction, fraction)
            if rows.rows >= MIN_OBSERVATIONS
            else Skipped(f"fewer than {MIN_OBSERVATIONS} rows: raise --batch-size")
        )
        found.append(
            LayerStats(
                name=".".join([*common, "softmax()"]),
                type="softmax()",
                kind=LayerKind.ACTIVATION,
                order=order,
                calls=1,
                params=0,
                trainable=0,
                grad_rms=Skipped("no parameters"),
                grad_norm=Skipped("no parameters"),
                weight_norm=Skipped("no parameters"),
                grad_to_weight=Skipped("no parameters"),
                act_rms=Skipped("a functional softmax: only its rows are measured"),
                out_grad_rms=Skipped("a functional softmax: only its rows are measured"),
                dead_fraction=Skipped("not a ReLU-family activation"),
                saturated_fraction=measured,
            )
        )
    return found


def _with_underflow(layer: LayerStats, i: int, shadow: Sequence[StepRecord]) -> LayerStats:
    fractions = [
        r.underflow[i] / r.grad_numel[i]
        for r in shadow
        if r.underflow is not None and r.grad_numel[i] and not r.grad_none[i]
    ]
    return replace(
        layer, underflow_fraction=Summary.of(fractions, missing="no gradient to measure")
    )


def _aggregate_layer(i: int, info: LayerInfo, records: Sequence[StepRecord]) -> LayerStats:
    orders = [r.order[i] for r in records if r.order[i] >= 0]
    calls = max((r.calls[i] for r in records), default=0)
    has_params = info.params > 0
    trainable = info.trainable > 0

    grad_steps = [r for r in records if not r.grad_none[i]] if trainable else []
    grad_rms = [_rms(r.grad_sumsq[i], r.grad_numel[i]) for r in grad_steps]
    grad_norm = [math.sqrt(r.grad_sumsq[i]) for r in grad_steps]
    if info.kind is LayerKind.EMBEDDING:
        # Only the rows looked up in the batch receive gradient; compare the gradient with
        # those rows, not with the whole table, or every embedding would look "vanishing".
        ratio = [
            _ratio(math.sqrt(r.grad_sumsq[i]), math.sqrt(r.used_weight_sumsq[i]))
            for r in grad_steps
        ]
    else:
        ratio = [_ratio(math.sqrt(r.grad_sumsq[i]), _weight_norm(r, i, info)) for r in grad_steps]
    weights = [_weight_norm(r, i, info) for r in records]

    no_grad = (
        "no trainable parameters" if not trainable else "no gradient reached this layer in any step"
    )
    act = [_rms(r.act_sumsq[i], r.act_numel[i]) for r in records if r.act_numel[i]]
    out_grad = [
        _rms(r.out_grad_sumsq[i], r.out_grad_numel[i]) for r in records if r.out_grad_numel[i]
    ]
    inputs = [
        _rms(r.in_sumsq[i], r.in_numel[i])
        for r in records
        if r.in_sumsq is not None and r.in_numel is not None and r.in_numel[i]
    ]
    # A module called several times is judged by its worst call (a shared activation module).
    # A unit is dead when it is <= 0 for every observation of the batch: with fewer than
    # MIN_OBSERVATIONS per unit (a pooled (B, C, 1, 1) context at batch 2) that says little.
    dead = [
        r.dead_worst[i] if r.dead_worst is not None else r.dead[i] / r.units[i]
        for r in records
        if r.units[i] and r.act_numel[i] >= MIN_OBSERVATIONS * r.units[i]
    ]
    few = any(r.units[i] for r in records)
    # A softmax's saturation is counted in rows; a handful of rows (attention pooling over the
    # positions of 2 images) says little about the next batch.
    enough = MIN_OBSERVATIONS if info.type in ("Softmax", "LogSoftmax") else 1
    saturated = [
        r.saturated_worst[i] if r.saturated_worst is not None else r.saturated[i] / r.sat_numel[i]
        for r in records
        if r.sat_numel[i] >= enough
    ]
    few_rows = enough > 1 and any(r.sat_numel[i] for r in records)
    not_called = (
        "never called as a module (its parent uses the weights directly), or TorchScript, "
        "which cannot be hooked"
    )

    def _count(field_name: str) -> int:
        return sum(getattr(r, field_name)[i] for r in records if getattr(r, field_name) is not None)

    return LayerStats(
        name=info.name,
        type=info.type,
        kind=info.kind,
        order=min(orders) if orders else -1,
        calls=calls,
        params=info.params,
        trainable=info.trainable,
        grad_rms=Summary.of(grad_rms, missing=no_grad),
        grad_norm=Summary.of(grad_norm, missing=no_grad),
        weight_norm=(
            Summary(statistics.median(weights), min(weights), max(weights))
            if has_params and weights
            else Summary(info.weight_norm, info.weight_norm, info.weight_norm)
            if has_params
            else Skipped("no parameters")
        ),
        grad_to_weight=Summary.of(ratio, missing=no_grad),
        act_rms=Summary.of(act, missing=not_called if not orders else "no tensor output"),
        in_rms=Summary.of(
            inputs,
            missing=(
                "measured for weight layers only"
                if info.kind is not LayerKind.WEIGHT
                else not_called
                if not orders
                else "no floating-point input"
            ),
        ),
        out_grad_rms=Summary.of(
            out_grad,
            missing=(
                not_called
                if not orders
                else "not measured for activations"
                if info.kind is LayerKind.ACTIVATION
                else "no gradient flowed to the output"
            ),
        ),
        dead_fraction=Summary.of(
            dead,
            missing=(
                f"fewer than {MIN_OBSERVATIONS} samples per unit: raise --batch-size"
                if few
                else "not a ReLU-family activation"
            ),
        ),
        saturated_fraction=Summary.of(
            saturated,
            missing=(
                f"fewer than {MIN_OBSERVATIONS} rows per step: raise --batch-size"
                if few_rows
                else "not a saturating activation"
            ),
        ),
        nonfinite=NonFinite(
            activations=_count("nonfinite_act"),
            output_grads=_count("nonfinite_out_grad"),
            param_grads=_count("nonfinite_grad"),
        ),
        grad_none_steps=sum(1 for r in records if trainable and r.grad_none[i]),
        grad_zero_steps=sum(
            1 for r in records if trainable and not r.grad_none[i] and r.grad_sumsq[i] == 0.0
        ),
        zero_weights=info.zero_weights,
        near_zero_weights=info.near_zero_weights,
        init_norm=info.init_norm,
        scale_like=info.scale_like,
        feeds_norm=any(r.feeds_norm[i] for r in records),
        rows=sum(r.act_rows[i] for r in records if r.act_rows is not None),
    )


def _first_nonfinite(
    infos: Sequence[LayerInfo], records: Sequence[StepRecord]
) -> FirstNonFinite | None:
    """The first place NaN/Inf shows up: forward order first, then backward order."""
    for step, r in enumerate(records):
        if r.nonfinite_act is None or r.nonfinite_out_grad is None or r.nonfinite_grad is None:
            continue
        if r.first_nonfinite_module is not None:
            return FirstNonFinite(r.first_nonfinite_module or "(model)", "forward", step)
        called = sorted((o, i) for i, o in enumerate(r.order) if o >= 0)
        for _, i in called:
            if r.nonfinite_act[i]:
                return FirstNonFinite(infos[i].name, "forward", step)
        if not math.isfinite(r.loss):
            return FirstNonFinite("(loss)", "loss", step)
        # Backward runs in reverse forward order: the last module to see a bad output
        # gradient in forward order is the first one in backward order.
        for _, i in reversed(called):
            if r.nonfinite_out_grad[i]:
                return FirstNonFinite(infos[i].name, "backward", step)
        for i, count in enumerate(r.nonfinite_grad):
            if count:
                return FirstNonFinite(infos[i].name, "param-grad", step)
    return None
