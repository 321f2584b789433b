"""The interface every check implements, and the helpers they share.

A check is a class with a stable kebab-case ``id``, a readable ``name``, an ``Options`` frozen
dataclass of thresholds (its defaults are the documented defaults), the remedy ids it suggests,
and a pure ``evaluate(stats, options)`` that only reads numbers. Its docstring, in four sections
(Symptom / Why it matters / Remedy / References), is its documentation: the docs/findings.md table and
``Finding.why`` are generated from it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from gradcheck_cli.findings import Finding, Severity
from gradcheck_cli.stats import LayerKind, LayerStats, ModelStats, Summary, value


class Check:
    """Base class of the checks; subclasses set the class attributes and ``evaluate``."""

    id: ClassVar[str]
    name: ClassVar[str]
    remedies: ClassVar[tuple[str, ...]] = ()
    # Options that are fractions of units, rows or values: a threshold above 1 is never reached.
    fractions: ClassVar[tuple[str, ...]] = ()

    @dataclass(frozen=True)
    class Options:
        """Thresholds of the check; none by default."""

    def evaluate(self, stats: ModelStats, options: Any) -> list[Finding]:
        """Return the findings for ``stats``; pure, no I/O."""
        raise NotImplementedError

    @classmethod
    def section(cls, title: str) -> str:
        """One section of the docstring (e.g. ``"Why it matters"``) as a single paragraph."""
        doc = cls.__doc__ or ""
        pattern = rf"^\s*{re.escape(title)}:\s*$(.*?)(?=^\s*[A-Z][A-Za-z ]+:\s*$|\Z)"
        match = re.search(pattern, doc, flags=re.MULTILINE | re.DOTALL)
        if not match:
            return ""
        return " ".join(match.group(1).split())


class FractionCheck(Check):
    """A check on a per-layer fraction (dead units, saturated values, fp16 underflow).

    Subclasses name the statistic (``stat``, a ``LayerStats`` field), the evidence key and the
    message; a layer at or above ``Options.warning`` is listed, and the finding is an error when
    the largest fraction reaches ``Options.error``.
    """

    stat: ClassVar[str]
    evidence_key: ClassVar[str]
    message: ClassVar[str]

    def evaluate(self, stats: ModelStats, options: Any) -> list[Finding]:
        hits = []
        for layer in stats.layers:
            fraction = value(getattr(layer, self.stat))
            if fraction is not None and fraction >= options.warning:
                hits.append((layer, fraction))
        if not hits:
            return []
        top = max(f for _, f in hits)
        severity = Severity.ERROR if top >= options.error else Severity.WARNING
        listing = ", ".join(f"{l.display_name} {f:.0%}" for l, f in hits[:5])
        more = f" and {len(hits) - 5} more" if len(hits) > 5 else ""
        unstable = [
            (l, stat)
            for l, _ in hits
            if isinstance(stat := getattr(l, self.stat), Summary) and unsteady(stat)
        ]
        spread = ""
        if unstable:
            l, stat = unstable[0]
            spread = (
                f"; unstable across batches ({l.display_name} ranges from {stat.low:.0%} to "
                f"{stat.high:.0%}): measure more --steps or a larger --batch-size"
            )
        return [
            Finding(
                id=self.id,
                severity=severity,
                layers=tuple(l.display_name for l, _ in hits),
                message=f"{self.message}: {listing}{more}{spread}",
                evidence={
                    f"max_{self.evidence_key}": top,
                    "threshold": crossed(severity, options.warning, options.error),
                    self.evidence_key: {l.display_name: f for l, f in hits},
                    **({"unstable_layers": len(unstable)} if unstable else {}),
                },
                remedies=self.remedies,
                why=self.section("Why it matters"),
            )
        ]


def unsteady(stat: Summary) -> bool:
    """Whether a statistic's values over the steps span an order of magnitude or more.

    A median over a few batches reads as a stable property of the model; when one batch gives
    ten times another (or zero against a positive value), it is not, and the finding says so.
    """
    if stat.high <= 0 or not math.isfinite(stat.high):
        return False
    return stat.low <= 0 or stat.high / stat.low >= 10


def crossed(severity: Severity, warning: float, error: float) -> float:
    """The threshold a finding of ``severity`` crossed, for its evidence."""
    return error if severity is Severity.ERROR else warning


def worst(findings: list[Finding]) -> list[Finding]:
    """The most severe of alternative findings of one check (the first on a tie), or none."""
    if not findings:
        return []
    return [max(findings, key=lambda f: f.severity.rank)]


def gmean(values: Sequence[float]) -> float:
    """Geometric mean of positive values (gradient ratios span orders of magnitude)."""
    return math.exp(sum(math.log(v) for v in values) / len(values))


def ratio_layers(stats: ModelStats) -> list[LayerStats]:
    """Weight layers with a usable gradient-to-weight ratio, in forward order.

    Left out: normalisers and embeddings (their ratios follow other laws), residual scales
    (LayerScale, ReZero: per-channel factors, not weight matrices) and other layers without a
    weight matrix (a Mamba mixer's own ``A_log``, ``D``, ``dt_bias``: the fan-in arguments
    behind these rules are about matrices), zero-initialised layers and
    layers whose weights are still near zero (their ratio is huge by construction: ``||W||`` is
    tiny), and layers with no or exactly zero gradient (the ``no-gradient`` check speaks for
    those).
    """
    layers = []
    for layer in stats.layers:
        g = value(layer.grad_to_weight)
        if layer.kind is LayerKind.WEIGHT and g is not None and 0 < g < math.inf:
            if not (
                layer.zero_weights
                or layer.near_zero_weights
                or layer.residual_scale
                or layer.scale_like
                or layer.attention_score
                or (not layer.depth and is_query_or_key(layer.name))
            ):
                layers.append(layer)
    return layers


# The separate query and key projections of attention, by the names the common implementations
# give them (Hugging Face BERT/RoBERTa/ViT/Llama/T5, diffusers, DistilBERT, fairseq/xformers).
_QK_NAMES = frozenset(
    {"query", "key", "q_proj", "k_proj", "to_q", "to_k", "wq", "wk", "q", "k", "q_lin", "k_lin"}
)


def is_query_or_key(name: str) -> bool:
    """Whether a layer is an attention query or key projection.

    At initialisation their gradient is second order: the attention logits are near zero, the
    softmax near uniform, and the gradient of each projection is scaled by the other's small
    weights, so their gradient-to-weight ratio sits two orders of magnitude below the value,
    output and MLP layers of the same block (measured on a 2-layer Hugging Face BERT). That is
    the normal start of every transformer, not vanishing with depth, so they are left out of
    the ratio rules. Fused projections (GPT-2's c_attn, nn.MultiheadAttention's in_proj) mix in
    the values and need no exception. Where the autograd graph was traced, the layers that feed
    attention scores are found structurally (``LayerStats.attention_score``) and these names
    are not used; the names serve ``watch()``, which traces no graph.
    """
    return name.rpartition(".")[2] in _QK_NAMES


def ratio(layer: LayerStats) -> float:
    """The median gradient-to-weight ratio of a layer known to have one."""
    stat = layer.grad_to_weight
    assert isinstance(stat, Summary)
    return stat.median


def step_ratio(layer: LayerStats) -> float:
    """The gradient relative to the larger of the weights and their standard init scale.

    ``||grad|| / max(||W||, ||W at 1/sqrt(fan_in)||)``. Layers deliberately initialised below the
    standard scale (GPT-2's residual projections at 0.02/sqrt(2 x layers), Fixup, SkipInit) have
    a large ratio by design: a step that is big against their small weights is ordinary against
    the scale every other layer starts at. For all other layers it is the plain ratio.
    """
    weight = value(layer.weight_norm) or 0.0
    if weight <= 0 or layer.init_norm <= weight:
        return ratio(layer)
    return ratio(layer) * weight / layer.init_norm


@dataclass(frozen=True)
class DepthProfile:
    """Gradient-to-weight ratios of the first and last quarter of the weight layers of a path."""

    early: tuple[LayerStats, ...]
    late: tuple[LayerStats, ...]
    early_ratio: float
    late_ratio: float
    path: tuple[LayerStats, ...] = ()

    @property
    def decay(self) -> float:
        """early / late: below 1 the gradient shrinks toward the input, above 1 it grows."""
        return self.early_ratio / self.late_ratio

    @property
    def route(self) -> str:
        """The path as evidence: ``a -> b -> ... -> y -> z (N weight layers)``."""
        names = [l.display_name for l in self.path]
        shown = names if len(names) <= 6 else [*names[:3], "...", *names[-2:]]
        return " -> ".join(shown) + f" ({len(names)} weight layers)"


def depth_profile(layers: Sequence[LayerStats], min_layers: int) -> DepthProfile | None:
    """Compare the first and last quarter of ``layers`` (one path, input first); None when there
    are too few.

    Output layers are left out: they get the loss gradient directly, and their ratio, large by
    nature, would pass for decay in the layers below (a small Hugging Face BERT whose pooler and
    classifier sit at the end; an expert's two layers against the head of a mixture of
    experts). Where the graph was traced, they are the layers at depth 1 (next to the loss),
    wherever they were called, and the path needs ``min_layers`` layers without them; otherwise
    the last layer of the path is left out when there are more than ``min_layers``.
    """
    if any(l.depth for l in layers):
        layers = [l for l in layers if l.depth != 1]  # every output layer, wherever called
    elif len(layers) > min_layers:
        layers = list(layers[:-1])
    if len(layers) < min_layers:
        return None
    quarter = max(1, len(layers) // 4)
    early, late = layers[:quarter], layers[-quarter:]
    return DepthProfile(
        early=tuple(early),
        late=tuple(late),
        early_ratio=gmean([ratio(l) for l in early]),
        late_ratio=gmean([ratio(l) for l in late]),
        path=tuple(layers),
    )


def paths(
    stats: ModelStats, layers: Sequence[LayerStats], breaks: frozenset[str] = frozenset()
) -> list[tuple[LayerStats, ...]]:
    """``layers`` along each route from an input layer to the loss, input first.

    Depth is read from the autograd graph (:mod:`gradcheck_cli.graph`): following each input
    layer's successor (the next layer on its longest route to the loss) gives one path per
    input, so a CNN and an MLP fused into two heads give two paths, and neither is compared
    with the other's head. Without a traced graph (``watch()``), the one path is forward order.
    A path with a layer named in ``breaks`` between two of its ``layers`` is left out: what
    lies on either side of it is not compared.
    """
    if not any(l.depth for l in stats.layers):
        return [tuple(layers)]
    wanted = {l.name for l in layers}
    by_name = {l.name: l for l in stats.layers}
    successors = {l.successor for l in stats.layers if l.successor is not None}
    starts = [l for l in stats.layers if l.depth and l.is_input]
    if not starts:  # no layer reads the inputs directly: start wherever no route arrives
        starts = [l for l in stats.layers if l.depth and l.name not in successors]
    found: list[tuple[LayerStats, ...]] = []
    for start in starts:
        chain: list[LayerStats] = []
        seen: set[str] = set()
        crossed = False  # a break after the first of ``layers`` on this route
        current: LayerStats | None = start
        while current is not None and current.name not in seen:
            seen.add(current.name)
            crossed = crossed or (current.name in breaks and bool(chain))
            if current.name in wanted:
                if crossed:
                    chain = []
                    break
                chain.append(current)
            current = by_name.get(current.successor) if current.successor else None
        if chain and tuple(chain) not in found:
            found.append(tuple(chain))
    return found


def depth_profiles(
    stats: ModelStats,
    layers: Sequence[LayerStats],
    min_layers: int,
    breaks: frozenset[str] = frozenset(),
) -> list[DepthProfile]:
    """The depth profile of every path with at least ``min_layers`` weight layers (none across
    ``breaks``, see :func:`paths`)."""
    return [
        profile
        for path in paths(stats, layers, breaks)
        if (profile := depth_profile(path, min_layers)) is not None
    ]
