"""Per-layer statistics: the frozen records a report is made of (:class:`LayerStats`,
:class:`ModelStats`, temporal profiles, graph cuts, the learning probe's result).

:mod:`gradcheck_cli.aggregate` computes them from the recorder's raw step totals; they never
touch hooks or modules.
"""

from __future__ import annotations

import enum
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


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
