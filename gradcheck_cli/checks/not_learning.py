"""The ``not-learning`` check, and what a model that learns does to the other findings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from gradcheck_cli.checks.base import Check
from gradcheck_cli.findings import Finding, Severity
from gradcheck_cli.stats import LearningProbe, ModelStats

# The findings the learning probe overrules when the model learns: statistics of gradients at
# initialisation. Structural facts (a cut graph, a state detached in forward, NaN, a receptive
# field too short, fp16 underflow) are never overruled: the probe's task may not need what they
# cut off, the user's does.
REFUTABLE = frozenset({"vanishing", "exploding", "vanishing-over-time", "dead-units", "saturation"})


class NotLearning(Check):
    """The model does not learn its own task (the learning probe, ``--learn N``).

    Symptom:
        A copy trained for the probe's steps (``--optimizer``, ``--lr``, ``--momentum``) on fresh
        batches of the model's own task (its ``loss_fn`` reading targets from the inputs, or
        ``--data`` targets) does not bring the held-out loss below the input-blind floor: the
        same trained model's loss with each output shifted one example along the batch, which is
        what a model reaches that learned the targets' marginal but nothing of its input. It
        must end below the floor by a quarter of the floor. A warning,
        naming the parameters whose weights moved less than 1% of the median parameter's
        relative change.

    Why it matters:
        Gradient statistics at initialisation say what can flow; this says whether anything
        was learned from the inputs. A model that does not beat an input-blind model on held-out
        batches has learned nothing from its inputs in those steps: a gradient that does not
        reach the layers that read them, a dependency out of reach, or an optimizer setting that
        stalls. A slow learner can also miss the bar in a short probe: more steps (``--learn``)
        settle it.

    Remedy:
        Read the other findings for where the gradient stops; compare with another optimizer
        (``--optimizer adam``: Adam normalises each parameter's step, SGD does not) or learning
        rate; give the probe more steps. ``gradcheck fix`` tries the remedies that change what
        a model can learn whatever its gradient statistics say, each judged by this probe:
        identity paths around shape-preserving blocks (a deep GCN that over-smooths: Li et al.
        2019), normalisation between layers, pre-norm, SIREN's init for sine layers, chrono
        gate biases for recurrences, and a variance-preserving re-initialisation.

    References:
        Glorot & Bengio 2010; Pascanu, Mikolov & Bengio 2013; Kingma & Ba 2015.
    """

    id = "not-learning"
    name = "Does not learn"
    remedies = ("residual-wrap", "batchnorm", "pre-norm", "sine-init", "gate-bias", "gain-init")

    @dataclass(frozen=True)
    class Options:
        """None: the probe's margin is part of its measurement."""

    def evaluate(self, stats: ModelStats, options: Options) -> list[Finding]:
        probe = stats.learning
        if probe is None or probe.verdict != "not-learning" or not probe.asked:
            return []
        still = probe.still
        named = (
            f"; the weights of {', '.join(still[:4])}{' and more' if len(still) > 4 else ''} "
            "barely moved (under 1% of the median parameter's relative change)"
            if still
            else ""
        )
        return [
            Finding(
                id=self.id,
                severity=Severity.WARNING,
                layers=still or ("(model)",),
                message=f"the model does not learn its task: {probe.summary()}{named}",
                evidence=evidence(probe),
                remedies=self.remedies,
                why=self.section("Why it matters"),
            )
        ]


def evidence(probe: LearningProbe) -> dict[str, float | int | str]:
    """The probe's numbers, for the evidence of a finding it made."""
    return {
        "heldout_start": probe.start,
        "heldout_end": probe.end,
        **({"input_blind": probe.blind} if probe.blind is not None else {}),
        "steps": probe.taken,
        "optimizer": probe.optimizer,
        "lr": probe.lr,
    }


def _refutable(finding: Finding) -> bool:
    return (
        finding.id in REFUTABLE
        and finding.severity.rank >= Severity.WARNING.rank
        and finding.evidence.get("reason") != "cut"  # a cut graph in time is structural
    )


def refutable(findings: Sequence[Finding]) -> bool:
    """Whether any of ``findings`` is one the learning probe could overrule: what makes the
    probe run when it was not asked for."""
    return any(_refutable(f) for f in findings)


def refuted(findings: Sequence[Finding], probe: LearningProbe | None) -> list[Finding]:
    """``findings`` after the probe: when the model learns, each refutable warning or error
    becomes information that says so, with the probe's numbers; when a probe that ran by
    itself saw it not learn or diverge, they say that, with the numbers, at their severity."""
    if probe is None or probe.verdict == "undecided":
        return list(findings)
    if probe.verdict != "learns":
        if probe.asked:  # the probe's own finding says it
            return list(findings)
        seen = "does not learn its task" if probe.verdict == "not-learning" else "diverges"
        return [
            replace(
                f,
                message=f"{f.message} (the learning probe agrees: the model {seen}: "
                f"{probe.summary()})",
                evidence={
                    **f.evidence,
                    **{f"probe_{key}": value for key, value in evidence(probe).items()},
                },
            )
            if _refutable(f)
            else f
            for f in findings
        ]
    return [
        replace(
            f,
            severity=Severity.INFO,
            message=f"{f.message} (trains anyway, by the learning probe: {probe.summary()})",
            evidence={
                **f.evidence,
                **{f"probe_{key}": value for key, value in evidence(probe).items()},
            },
        )
        if _refutable(f)
        else f
        for f in findings
    ]
