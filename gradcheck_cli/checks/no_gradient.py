"""The ``no-gradient`` check: trainable parameters that received no gradient."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gradcheck_cli.checks.base import Check
from gradcheck_cli.findings import Finding, Severity
from gradcheck_cli.stats import (
    GraphCut,
    LayerKind,
    LayerStats,
    ModelStats,
    Skipped,
    Summary,
    collapse_names,
    value,
)


class NoGradient(Check):
    """Trainable parameters that received no gradient, or an exactly zero one, in every step.

    Symptom:
        A layer with trainable parameters ends every step with ``.grad`` None (it is not
        connected to the loss) or exactly zero (the path is connected but blocked). Blocked
        layers are an error, unless the model holds a layer whose weights are all exactly zero:
        a deliberately zero-initialised head or residual branch (Goyal et al. 2017, ReZero,
        Fixup) blocks the gradient only until the first optimizer step, so that is reported as
        info; so are layers that ran only on empty tensors (an expert or a language adapter
        that no example of the batch was dispatched to), layers the loss does not read (the
        gradient at their output is exactly zero and every route to the loss keeps only part of
        it: a [CLS] pooling, a split the loss reads one part of, an overwrite) and embeddings
        that looked up only their padding row. Layers that run and
        whose output *values* reach the loss while no gradient does are an error, a cut graph
        (an accidental ``.detach()``, a call under ``torch.no_grad()``, an argmax or index, an
        integer cast, ``.item()``, a NumPy round trip): one more forward pass with their
        parameters perturbed moves the loss, and the finding names the operation where the
        gradient stops and its source line. One parameter cut off beside others of its layer
        that train (``self.scale.exp().item()``) is found the same way. Layers that run but whose outputs do not reach
        the loss used (a metric, a head the loss ignores) are info; layers that never run
        are a warning, except when ``forward`` has inputs that default to None and were not
        given (a vision tower without pixel_values: info), a branch that every numbered block
        skips while the rest of each block runs (cross-attention without encoder states:
        info), and experts of a routed group (siblings such as ``experts.3.w1`` of which
        several ran with differing numbers of rows): they are info when sampling explains
        them (R routed rows leave about E (1 - 1/E)^R of E experts idle by chance), and a
        warning when fewer than a quarter of the experts chance would reach ran at all (a
        collapsed router).

    Why it matters:
        A parameter without gradient never trains. When it is blocked (every unit above it
        dead, a zero multiplier, a detach) it is a bug; when it is unused, optimizers still
        keep state for it and DistributedDataParallel needs find_unused_parameters=True.

    Remedy:
        For a cut graph, remove the cut (use a straight-through estimator for a quantiser), or
        call requires_grad_(False) on the layers if they are meant to be frozen (frozen
        parameters are listed in the report's header, never judged). Otherwise look for dead
        units or a stray detach()/no_grad above the named layers; freeze unused
        parameters (requires_grad_(False)) or remove them; give loss_fn every output that
        should train.

    References:
        Goyal et al. 2017 (zero-init residual gamma); Zhang et al. 2019 (Fixup); Bachlechner et
        al. 2020 (ReZero); Shazeer et al. 2017 and Fedus et al. 2021 (routing, load balancing);
        van den Oord et al. 2017 (VQ-VAE's straight-through estimator).
    """

    id = "no-gradient"
    name = "Parameters without gradient"
    remedies = ("kaiming-init",)

    @dataclass(frozen=True)
    class Options:
        """No thresholds: a gradient missing in every step is reported."""

    def evaluate(self, stats: ModelStats, options: Options) -> list[Finding]:
        every = stats.steps
        trainable = [l for l in stats.layers if l.trainable and l.nonfinite.total == 0]
        blocked = [l for l in trainable if every and l.grad_zero_steps == every]
        detached = [l for l in trainable if every and l.grad_none_steps == every]
        zero_init = [l.display_name for l in stats.layers if l.zero_weights]
        why = self.section("Why it matters")
        findings = []
        if blocked and stats.losses and all(loss == 0.0 for loss in stats.losses):
            # A loss of exactly 0 on every batch has a zero gradient everywhere: the batches
            # leave nothing to learn (labels copied from the inputs of a masked LM), which says
            # nothing about the model.
            findings.append(
                self._finding(
                    Severity.WARNING,
                    blocked,
                    "the loss is exactly 0 on every batch, so every gradient is zero and nothing "
                    "was measured: the batches leave nothing to learn (labels equal to the "
                    "inputs?); give real targets with --data or loss_fn",
                    {"reason": "zero-loss"},
                    why,
                    remedies=(),
                )
            )
        elif blocked:
            empty = [l for l in blocked if _only_empty(l)]
            blocked = [l for l in blocked if not _only_empty(l)]
            if empty:
                findings.append(
                    self._finding(
                        Severity.INFO,
                        empty,
                        f"{len(empty)} layer(s) ran only on empty tensors (no example of this "
                        "batch was dispatched to them: an expert no token chose, the adapter of "
                        f"a language the batch lacks): {_names([l.display_name for l in empty])}"
                        "; they train on batches that hold their examples",
                        {"reason": "no-rows"},
                        why,
                        remedies=(),
                    )
                )
            unread, padding, blocked = _by_construction(stats, blocked, bool(zero_init))
            if unread:
                findings.append(
                    self._finding(
                        Severity.INFO,
                        unread,
                        f"{len(unread)} layer(s) get an exactly zero gradient because the loss "
                        "reads none of the positions they affect: every route from them to the "
                        "loss keeps only part of their output (a [CLS] or last-token pooling, "
                        f"positions overwritten later): {_names([l.display_name for l in unread])}",
                        {"reason": "not-read"},
                        why,
                        remedies=(),
                    )
                )
            if padding:
                findings.append(
                    self._finding(
                        Severity.INFO,
                        padding,
                        f"{len(padding)} embedding(s) looked up only their padding row, which "
                        "gets no gradient by design (padding_idx): "
                        f"{_names([l.display_name for l in padding])}; give the ids they should "
                        "read (an optional input left out?) if they should train",
                        {"reason": "padding-only"},
                        why,
                        remedies=(),
                    )
                )
            if blocked and zero_init:
                findings.append(
                    self._finding(
                        Severity.INFO,
                        blocked,
                        f"{len(blocked)} layer(s) get an exactly zero gradient, blocked by "
                        f"the zero-initialised layer(s) {_names(zero_init)}; this lasts only "
                        "until the first optimizer step updates those weights",
                        {"reason": "zero-init", "zero_initialised": zero_init},
                        why,
                        remedies=(),
                    )
                )
            elif blocked:
                findings.append(
                    self._finding(
                        Severity.ERROR,
                        blocked,
                        f"{len(blocked)} layer(s) get an exactly zero gradient in every step: "
                        f"{_names([l.display_name for l in blocked])}",
                        {"reason": "blocked"},
                        why,
                    )
                )
        for cut in stats.cuts:
            members = [l for l in stats.layers if l.name in cut.layers]
            if members:
                findings.append(self._cut(stats, cut, members, why))
        cut_names = {name for cut in stats.cuts for name in cut.whole}
        ran = {l.name for l in stats.layers if l.calls > 0}
        # nn.MultiheadAttention passes out_proj's weight to its functional form and never calls
        # out_proj: it runs when its parent does.
        read = {l.name for l in detached if l.calls == 0 and _read_by_parent(l, ran)}
        called = [
            l for l in detached if (l.calls > 0 or l.name in read) and l.name not in cut_names
        ]
        unused = [l for l in detached if l.calls == 0 and l.name not in read]
        routed, unused = _unrouted(stats, unused)
        for group, members in routed.items():
            findings.append(self._routing(stats, group, members, why))
        if unused and stats.inputs_not_given:
            shown = ", ".join(stats.inputs_not_given[:5])
            more = len(stats.inputs_not_given) - 5
            findings.append(
                self._finding(
                    Severity.INFO,
                    unused,
                    f"{len(unused)} layer(s) never ran ({_names([l.display_name for l in unused])})"
                    f"; forward's optional inputs {shown}"
                    + (f" and {more} more" if more > 0 else "")
                    + " were not given: give them in example_inputs or --data if these layers "
                    "should train",
                    {"reason": "inputs-not-given", "inputs": list(stats.inputs_not_given)},
                    why,
                    remedies=(),
                )
            )
            unused = []
        skipped, unused = _skipped_branches(stats, unused)
        for pattern, members in skipped.items():
            findings.append(
                self._finding(
                    Severity.INFO,
                    members,
                    f"every block skips the same branch ({pattern}, {len(members)} layer(s)) "
                    "while the rest of each block runs: an optional input was not given (as "
                    "cross-attention without encoder states); give it in example_inputs or "
                    "--data if the model should use it",
                    {"reason": "optional-branch", "group": pattern},
                    why,
                    remedies=(),
                )
            )
        if called:
            findings.append(
                self._finding(
                    Severity.INFO,
                    called,
                    f"{len(called)} layer(s) run but do not reach the loss used: "
                    f"{_names([l.display_name for l in called])}",
                    {"reason": "not-in-loss"},
                    why,
                    remedies=(),
                )
            )
        if unused:
            findings.append(
                self._finding(
                    Severity.WARNING,
                    unused,
                    f"{len(unused)} layer(s) with trainable parameters never run in forward: "
                    f"{_names([l.display_name for l in unused])}",
                    {"reason": "unused"},
                    why,
                    remedies=(),
                )
            )
        return findings

    def _cut(
        self, stats: ModelStats, cut: GraphCut, members: list[LayerStats], why: str
    ) -> Finding:
        """An error: the layers' values reach the loss, but their gradient stops at a cut."""
        where = f"{cut.operation} ({cut.source})" if cut.source else cut.operation
        whole = [l for l in members if l.name in cut.whole]
        named = ", ".join(
            n for n in (_collapse(whole, stats) if whole else "", *cut.parameters) if n
        )
        op = re.match(r"(?:torch)?\.(\w+)\(\)", cut.operation)
        index = op is not None and op[1] in _INDEXING
        share = "under 1%" if 0 < cut.share < 0.005 else f"{cut.share:.0%}"
        return self._finding(
            Severity.ERROR,
            members,
            f"the graph is cut at {where}: the values of {named} reach the loss, but no "
            f"gradient reaches them: {cut.params:,} trainable values, {share} of the model's, "
            "never train; remove the cut"
            + (
                " (for a choice or an index, a straight-through estimator, z + (q - z).detach(),"
                " or a soft lookup)"
                if index
                else ""
            )
            + ", or call requires_grad_(False) on them if they are meant to be frozen",
            {
                "reason": "cut",
                "operation": cut.operation,
                "source": cut.source,
                "parameters": list(cut.parameters),
                "params": cut.params,
                "share": cut.share,
            },
            why,
            remedies=(),
        )

    def _routing(
        self, stats: ModelStats, group: Group, members: list[LayerStats], why: str
    ) -> Finding:
        """Experts that got no input: info when sampling explains it, a warning when it does not.

        With R rows routed uniformly over E experts, an expert gets none with probability
        (1 - 1/E)^R, so about E (1 - 1/E)^R experts are idle by chance alone (64 experts and
        48 routed rows leave about 30 idle). A router at initialisation is not uniform, so
        more than that can be idle without a defect; but when fewer than a quarter of the
        experts that chance would reach ran at all, the router sends its rows to a few
        favourites (a collapsed router), and more rows would not change that.
        """
        experts, rows, idle = group.experts, group.assignments, group.idle
        expected_idle = experts * (1 - 1 / experts) ** rows
        active, expected_active = experts - idle, experts - expected_idle
        evidence = {
            "reason": "not-routed",
            "group": group.pattern,
            "experts": experts,
            "idle_experts": idle,
            "routed_rows": rows,
            "expected_idle": expected_idle,
        }
        if active >= expected_active / 4:
            return self._finding(
                Severity.INFO,
                members,
                f"{idle} of {experts} experts ({group.pattern}) got no input in these "
                f"batches: {rows} routed rows leave about {expected_idle:.0f} idle by chance "
                "alone; raise --batch-size to see them trained",
                evidence,
                why,
                remedies=(),
            )
        return self._finding(
            Severity.WARNING,
            members,
            f"only {active} of {experts} experts ({group.pattern}) got any input from "
            f"{rows} routed rows, where chance alone would reach about {expected_active:.0f}: "
            "the router sends its rows to a few experts (add a load-balancing loss)",
            evidence,
            why,
            remedies=(),
        )

    def _finding(
        self,
        severity: Severity,
        layers: list[LayerStats],
        message: str,
        evidence: dict[str, object],
        why: str,
        remedies: tuple[str, ...] | None = None,
    ) -> Finding:
        return Finding(
            id=self.id,
            severity=severity,
            layers=tuple(l.display_name for l in layers),
            message=message,
            evidence={"layers": len(layers), **evidence},  # type: ignore[dict-item]
            remedies=self.remedies if remedies is None else remedies,
            why=why,
        )


# Modules whose parent uses their parameters without calling them (torch's MultiheadAttention
# and its out_proj, a NonDynamicallyQuantizableLinear).
_READ_BY_PARENT = frozenset({"NonDynamicallyQuantizableLinear"})


def _read_by_parent(layer: LayerStats, ran: set[str]) -> bool:
    """Whether ``layer`` is one its parent reads without calling, and the parent ran."""
    parent = layer.name.rpartition(".")[0]
    return layer.type in _READ_BY_PARENT and parent in ran


def _only_empty(layer: LayerStats) -> bool:
    """Whether the layer ran and every output it gave held no rows: no activation was measured
    (an empty tensor has no RMS) and no row was counted."""
    return layer.calls > 0 and layer.rows == 0 and isinstance(layer.act_rms, Skipped)


def _by_construction(
    stats: ModelStats, blocked: list[LayerStats], zero_init: bool
) -> tuple[list[LayerStats], list[LayerStats], list[LayerStats]]:
    """Split exactly-zero gradients that the model's construction explains from the rest.

    Not read: the gradient reaching the layer's output is exactly zero in every step while the
    output itself is not, and every route to the loss keeps only part of it (unless a layer of
    dead units, or a zero-initialised layer, explains the zeros). Padding only: an embedding
    whose output is exactly zero while a gradient reaches it: every id was its padding index,
    whose row never trains.
    """
    dead_somewhere = any((value(l.dead_fraction) or 0.0) >= 0.99 for l in stats.layers)

    def exactly_zero(m: object) -> bool:
        return isinstance(m, Summary) and m.high == 0.0

    unread = [
        l
        for l in blocked
        if l.partly_read
        and not dead_somewhere
        and not zero_init
        and exactly_zero(l.out_grad_rms)
        and (value(l.act_rms) or 0.0) > 0
    ]
    padding = [
        l
        for l in blocked
        if l.kind is LayerKind.EMBEDDING
        and exactly_zero(l.act_rms)
        and (value(l.out_grad_rms) or 0.0) > 0
    ]
    explained = {id(l) for l in unread + padding}
    return unread, padding, [l for l in blocked if id(l) not in explained]


# Operations that turn values into a choice or an index, which a straight-through estimator or
# a soft (weighted) lookup replaces when the gradient should pass.
_INDEXING = ("argmax", "argmin", "long", "int", "topk", "round", "floor", "ceil", "searchsorted")


def _collapse(members: list[LayerStats], stats: ModelStats) -> str:
    """The members' names, each module all of whose trainable layers (two or more) are
    members written once as ``module.*`` (``backbone.*`` for a whole backbone)."""
    trainable = [l.name for l in stats.layers if l.trainable]
    labels = collapse_names([l.name for l in members], trainable, min_under=2)
    return _names(list(dict.fromkeys(labels.values())))


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:4])
    return shown + (f" and {len(names) - 4} more" if len(names) > 4 else "")


@dataclass(frozen=True)
class Group:
    """Sibling modules of one container (``moe.experts.*.fc1``) that a router feeds."""

    pattern: str
    experts: int
    idle: int
    assignments: int  # rows the called siblings received, over all steps


def _unrouted(
    stats: ModelStats, unused: list[LayerStats]
) -> tuple[dict[Group, list[LayerStats]], list[LayerStats]]:
    """Split never-called layers into experts of a routed group and the rest.

    Siblings are layers whose names differ only in one numeric component (``experts.3.w1``,
    ``experts.17.w1``) and that share a type and a parameter count. They are routed when at
    least two of them ran and the rows they received differ: a sequential stack of identical
    blocks sends every block the same rows, a router does not.
    """
    routed: dict[Group, list[LayerStats]] = {}
    rest = []
    for layer in unused:
        group = _group_of(stats, layer)
        if group is None:
            rest.append(layer)
        else:
            routed.setdefault(group, []).append(layer)
    return routed, rest


def _numbered(stats: ModelStats, parts: list[str], index: int) -> list[LayerStats]:
    """The layers named like ``parts`` with any number in place of the number at ``index``."""
    pattern = ".".join([*parts[:index], "*", *parts[index + 1 :]])
    regex = re.compile(re.escape(pattern).replace(r"\*", r"\d+") + "$")
    return [l for l in stats.layers if regex.match(l.name)]


def _group_of(stats: ModelStats, layer: LayerStats) -> Group | None:
    parts = layer.name.split(".")
    for index in reversed(range(len(parts))):
        if not parts[index].isdigit():
            continue
        siblings = [
            l
            for l in _numbered(stats, parts, index)
            if l.type == layer.type and l.params == layer.params
        ]
        ran = [l for l in siblings if l.calls > 0]
        if len(ran) >= 2 and len({l.rows for l in ran}) > 1:
            idle = len(siblings) - len(ran)
            pattern = ".".join([*parts[:index], "*"])
            return Group(pattern, len(siblings), idle, sum(l.rows for l in ran))
    return None


def _skipped_branches(
    stats: ModelStats, unused: list[LayerStats]
) -> tuple[dict[str, list[LayerStats]], list[LayerStats]]:
    """Never-called layers that every numbered block skips alike, the rest of each block running.

    ``decoder.layers.0.encoder_attn.q_proj`` unused in every decoder layer while each layer's
    self-attention runs is an optional branch (cross-attention without encoder states), not a
    forgotten module; a block that never runs at all, or one module left out in one block,
    stays a warning.
    """
    ran = {l.name for l in stats.layers if l.calls > 0}
    names = {l.name for l in unused}
    branches: dict[str, list[LayerStats]] = {}
    rest = []
    for layer in unused:
        parts = layer.name.split(".")
        numbers = [i for i in range(len(parts) - 1) if parts[i].isdigit()]
        found = None
        if numbers:
            index = numbers[-1]  # the innermost numbered block
            siblings = [l.name for l in _numbered(stats, parts, index)]
            tail = len(".".join(parts[index + 1 :])) + 1
            blocks = {n[: len(n) - tail] + "." for n in siblings}
            if (
                len(siblings) >= 2
                and all(n in names for n in siblings)
                and all(any(r.startswith(b) for r in ran) for b in blocks)
            ):
                found = ".".join([*parts[:index], "*", parts[index + 1]])
        if found is None:
            rest.append(layer)
        else:
            branches.setdefault(found, []).append(layer)
    return branches, rest
