"""Per-layer statistics: the frozen records, and the arithmetic that turns raw step totals into them.

:mod:`gradcheck_cli.hooks` collects raw per-step totals (sums of squares, counts) as tensors and
brings them to the host once per step as a :class:`StepRecord`. This module aggregates those
records over steps into one :class:`LayerStats` per layer. It never touches hooks or modules,
so every function here is tested with hand-built numbers.
"""

from __future__ import annotations

import enum
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any


class LayerKind(str, enum.Enum):
    """What role a measured module plays; checks treat the roles differently."""

    WEIGHT = "weight"  # Linear, Conv, RNN, attention, and any other module owning parameters
    NORM = "norm"  # BatchNorm, LayerNorm, GroupNorm, ...: affine parameters of a normaliser
    EMBEDDING = "embedding"  # a lookup table: only the rows used by the batch get gradient
    ACTIVATION = "activation"  # parameter-free nonlinearity, measured for dead/saturated units


@dataclass(frozen=True)
class Skipped:
    """A statistic that could not be measured for a layer, with the reason why."""

    reason: str


@dataclass(frozen=True)
class Summary:
    """One statistic aggregated over the diagnosis steps: its median and its range."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float], *, missing: str) -> Summary | Skipped:
        """Summarise ``values`` over steps; NaN and Inf are kept so they stay visible.

        Returns ``Skipped(missing)`` when there is no value at all.
        """
        if not values:
            return Skipped(missing)
        if not all(map(math.isfinite, values)):
            # A non-finite value in any step poisons the statistic: report it as such
            # rather than hiding it behind a median of the finite steps.
            bad = next(v for v in values if not math.isfinite(v))
            return cls(bad, min(values), max(values))
        if len(values) == 1:  # a one-step diagnosis; called eight times per layer
            return cls(values[0], values[0], values[0])
        return cls(statistics.median(values), min(values), max(values))


Measured = Summary | Skipped


def value(stat: Measured) -> float | None:
    """The median of a measured statistic, or None when it was skipped."""
    return stat.median if isinstance(stat, Summary) else None


@dataclass(frozen=True)
class NonFinite:
    """Counts of NaN/Inf values seen over all steps, by where they were seen."""

    activations: int = 0
    output_grads: int = 0
    param_grads: int = 0

    @property
    def total(self) -> int:
        """All non-finite values in this layer."""
        return self.activations + self.output_grads + self.param_grads


@dataclass(frozen=True)
class LayerStats:
    """Everything measured for one module, aggregated over steps.

    ``order`` is the position of the module's first call in the forward pass; modules that own
    parameters but are never called (their parent uses the weights directly, as
    ``nn.MultiheadAttention`` does with ``out_proj``) come after all called ones.
    """

    name: str
    type: str
    kind: LayerKind
    order: int
    calls: int
    params: int
    trainable: int
    grad_rms: Measured
    grad_norm: Measured
    weight_norm: Measured
    grad_to_weight: Measured
    act_rms: Measured
    out_grad_rms: Measured
    dead_fraction: Measured
    saturated_fraction: Measured
    nonfinite: NonFinite = field(default_factory=NonFinite)
    grad_none_steps: int = 0  # steps in which no trainable parameter got a .grad at all
    grad_zero_steps: int = 0  # steps in which every gradient value was exactly zero
    zero_weights: bool = False  # all weights exactly zero: a deliberate zero initialisation
    near_zero_weights: bool = False  # weights far below any init scale (a zero init, updated)
    feeds_norm: bool = False  # output goes straight into a normaliser: scale-invariant weights
    underflow_fraction: Measured = Skipped("measured only with --amp fp16")
    init_norm: float = 0.0  # the norm of its weight matrices at the standard scale 1/sqrt(fan_in)
    # From the autograd graph of step 0's loss (gradcheck_cli.graph); 0 / "" when not traced.
    depth: int = 0  # measured layers on the longest route from the loss to it (1: output layer)
    successor: str | None = None  # the next layer toward the loss on that route
    is_input: bool = False  # no other measured layer lies below it
    residual_scale: bool = False  # its parameters scale a branch added to a residual stream
    attention_score: bool = False  # it feeds attention scores (a query or key projection)
    rows: int = 0  # rows (tokens, samples) its outputs held, summed over all calls and steps
    in_rms: Measured = Skipped("measured for weight layers only")  # RMS of its (first) input
    partly_read: bool = False  # every route to the loss passes indexing, slicing or masking
    scale_like: bool = False  # no weight matrix: every parameter a scalar or per-channel vector

    @property
    def display_name(self) -> str:
        """The module's qualified name, or ``(model)`` for the root module."""
        return self.name or "(model)"


@dataclass(frozen=True)
class FirstNonFinite:
    """Where NaN/Inf first appeared: the module, the pass, and the step."""

    layer: str
    where: str  # "loss", "forward", "backward" or "param-grad"
    step: int


# How a model-level profile read at the model's input (not an embedding) names its place.
INPUT = "(input)"


@dataclass(frozen=True)
class TemporalProfile:
    """The gradient norm reaching each time step of a sequence, in input order.

    ``method`` says what was differentiated: ``last step`` (a recurrent module's last output,
    projected on a random direction) or ``loss`` (the diagnosis loss, at an embedding's output).
    ``convolutions`` (model-level profiles only) names the model's 1-D convolutions, and
    ``receptive_field`` is how many steps they see together when stacked in series: 1 plus the
    sum of (kernel size - 1) x dilation. ``axis`` (model-level profiles) is the axis read as
    time, of the input and of the embedding output alike. ``cut_values_reach`` (model-level profiles with a
    cliff only) says whether the values at the positions before the cliff still reach the loss
    (:func:`cuts.positions_reach`): True is a cut graph, False positions the output never sees.
    """

    module: str
    cell: str  # RNN, RNN_RELU, LSTM, GRU, attention, or model
    gated: bool
    method: str
    norms: tuple[float, ...]
    convolutions: tuple[str, ...] = ()
    receptive_field: int | None = None
    cut_values_reach: bool | None = None
    axis: int | None = None  # model-level profiles: the axis read as time
    # Where the positions' gradient is first dropped when their values reach the loss
    # (:func:`cuts.position_cut`): the operation and its source line, or empty.
    cut_operation: str = ""
    cut_source: str = ""

    @property
    def label(self) -> str:
        """``name (cell, N steps)``, as reports name a profile."""
        return f"{self.module or '(model)'} ({self.cell}, {len(self.norms)} steps)"

    def buckets(self, points: int) -> tuple[int, tuple[float, ...]]:
        """At most ``points`` means over runs of ``stride`` consecutive steps, and the stride."""
        stride = max(1, math.ceil(len(self.norms) / points))
        means = tuple(
            statistics.fmean(self.norms[i : i + stride]) for i in range(0, len(self.norms), stride)
        )
        return stride, means

    @property
    def window(self) -> int:
        """How many steps make the "early" and the "late" end: a tenth of the sequence."""
        return max(1, len(self.norms) // 10)

    @property
    def early(self) -> float:
        """Mean gradient norm over the first tenth of the steps."""
        return statistics.fmean(self.norms[: self.window])

    @property
    def late(self) -> float:
        """Mean gradient norm over the last tenth of the steps."""
        return statistics.fmean(self.norms[-self.window :])

    @property
    def early_to_late(self) -> float | None:
        """``early / late``; None when the late steps get no gradient at all."""
        return self.early / self.late if self.late > 0 and math.isfinite(self.late) else None

    def cut_at(self, factor: float = 1e-6) -> int | None:
        """The first step that gets any gradient when every step before it gets exactly none
        and this one gets at least ``factor`` of the late mean: a cliff, the mark of a graph
        cut in the recurrence (a hidden state detached in forward). A gradient that decays
        into float32's underflow reaches the zeros at ~1e-38 of its late value instead, and
        gives None; so does a profile without leading zeros."""
        first = next((i for i, norm in enumerate(self.norms) if norm != 0), None)
        if not first or not self.late > 0:
            return None
        return first if self.norms[first] >= factor * self.late else None

    def reach(self, factor: float = 1e-3) -> int:
        """How many steps, counted back from the end, get at least ``factor`` x the late mean.

        Trailing steps with no gradient at all (the last position of a next-token loss) are
        skipped, not counted as the end of the reach.
        """
        norms = list(self.norms)
        while norms and norms[-1] == 0:
            norms.pop()
        steps = 0
        for norm in reversed(norms):
            if not norm >= factor * self.late:
                break
            steps += 1
        return steps


def collapse_names(
    chosen: Sequence[str], universe: Sequence[str], *, min_under: int = 1
) -> dict[str, str]:
    """Each chosen dotted name with the label it is shown under: ``P.*`` for the shortest
    prefix ``P`` under which every name of ``universe`` is chosen (and at least ``min_under``
    names lie), else the name itself. ``encoder.0.weight`` and ``encoder.2.bias`` become
    ``encoder.*`` when nothing else lies under ``encoder``. Counted once per prefix, so a
    model of many parameters costs one pass over their names."""
    picked = set(chosen)
    total: dict[str, int] = {}
    inside: dict[str, int] = {}
    for name in universe:
        parts = name.split(".")
        for end in range(1, len(parts)):
            prefix = ".".join(parts[:end])
            total[prefix] = total.get(prefix, 0) + 1
            inside[prefix] = inside.get(prefix, 0) + (name in picked)
    labels = {}
    for name in chosen:
        parts = name.split(".")
        prefixes = (".".join(parts[:end]) for end in range(1, len(parts)))
        whole = (p for p in prefixes if min_under <= total.get(p, 0) == inside.get(p, 0))
        labels[name] = next((p + ".*" for p in whole), name)
    return labels


@dataclass(frozen=True)
class GraphCut:
    """Parameters of layers that ran, whose values reach the loss, but whose gradient stops at
    ``operation`` (``.detach()``, ``torch.no_grad()``, ``torch.argmin()``) at ``source``
    (``file.py:LINE``, empty when no frame of the user's code was found)."""

    layers: tuple[str, ...]  # the measured layers holding the cut parameters
    parameters: tuple[str, ...]  # cut parameters of layers that keep others ("head.log_scale")
    whole: tuple[str, ...]  # layers all of whose trainable parameters are cut
    operation: str
    source: str
    params: int  # values in the cut parameters
    trainable: int  # trainable parameters of the whole model

    @property
    def share(self) -> float:
        """The fraction of the model's trainable parameters that the cut leaves untrained."""
        return self.params / self.trainable if self.trainable else 0.0


@dataclass(frozen=True)
class LearningProbe:
    """What the learning probe (:mod:`gradcheck_cli.learning`) did and found: held-out losses
    of the model's own task before and after training a copy, and the input-blind floor."""

    optimizer: str
    lr: float
    momentum: float
    requested: int
    taken: int
    seconds: float
    start: float
    end: float
    blind: float | None
    verdict: str  # learns, not-learning, diverging or undecided
    reason: str
    still: tuple[str, ...] = ()  # layers whose weights barely moved, for not-learning
    # Asked for (--learn N), or run by itself to test findings it could refute: then it adds
    # no finding of its own, and says what it saw in the findings it tested.
    asked: bool = True

    def summary(self) -> str:
        """One line: the held-out losses and the training that gave them."""
        floor = f", input-blind {self.blind:.3g}" if self.blind is not None else ""
        momentum = f", momentum {self.momentum:g}" if self.optimizer == "sgd" else ""
        return (
            f"held-out loss {self.start:.3g} -> {self.end:.3g}{floor} in {self.taken} "
            f"{self.optimizer} steps at lr {self.lr:g}{momentum} ({self.seconds:.1f} s)"
        )


@dataclass(frozen=True)
class ModelStats:
    """The input of every check: per-layer statistics plus model-level facts."""

    layers: tuple[LayerStats, ...]
    losses: tuple[float, ...]
    steps: int
    first_nonfinite: FirstNonFinite | None = None
    temporal: tuple[TemporalProfile, ...] = ()
    # Under --train-steps, after step 0: each layer's gradient norm at step 0 of the training.
    start_grad_norms: tuple[tuple[str, float], ...] = ()
    # Parameters of forward that default to None and that the batches did not give.
    inputs_not_given: tuple[str, ...] = ()
    # Layers without gradient whose output values reach the loss all the same (cuts.py).
    cuts: tuple[GraphCut, ...] = ()
    # Why passes went unmeasured, when the caller knows (watch(): "4 forward passes in eval()
    # mode"); the nothing-measured finding quotes it.
    unmeasured: str = ""
    # The learning probe (--learn N), when it ran.
    learning: LearningProbe | None = None

    def by_name(self, name: str) -> LayerStats:
        """The layer called ``name``; raises KeyError when there is none."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)


@dataclass(frozen=True)
class SoftmaxRows:
    """A functional softmax (``F.softmax``, ``Tensor.softmax``) seen in the graph: how many of
    its rows put 99% or more on one entry, and the layers whose outputs feed its logits."""

    feeders: tuple[int, ...]
    saturated: int
    rows: int


@dataclass(frozen=True)
class Structure:
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
    def unknown(cls, layers: int) -> Structure:
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
    structure: Structure | None = None,
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
    layer: LayerStats, i: int, structure: Structure, infos: Sequence[LayerInfo]
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
    structure: Structure, infos: Sequence[LayerInfo], layers: Sequence[LayerStats]
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
