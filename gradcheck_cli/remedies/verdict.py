"""Judging a remedy by measurement: the same diagnosis before and after, compared."""

from __future__ import annotations

import enum
from collections.abc import Iterable

from gradcheck_cli.findings import Report, Severity


class Verdict(str, enum.Enum):
    """What a remedy did to the findings it was meant for."""

    RESOLVED = "resolved"
    IMPROVED = "improved"
    NO_EFFECT = "no effect"
    WORSE = "made worse"
    NOT_APPLICABLE = "not applicable"


_WEIGHT = {Severity.ERROR: 100, Severity.WARNING: 10, Severity.INFO: 0}
# The learning probe's own findings (gradcheck_cli.checks.not_learning, .diverging).
TRAINING = frozenset({"not-learning", "diverging"})


def score(report: Report) -> int:
    """100 per error, 10 per warning: lower is healthier."""
    return sum(_WEIGHT[f.severity] for f in report.findings)


def _worst(report: Report) -> dict[str, int]:
    worst: dict[str, int] = {}
    for f in report.findings:
        if f.severity.rank >= Severity.WARNING.rank:
            worst[f.id] = max(worst.get(f.id, 0), f.severity.rank)
    return worst


def judge(before: Report, after: Report, targets: Iterable[str]) -> Verdict:
    """Compare two diagnoses of the same model, for the finding ids a remedy targets.

    Made worse: a finding at warning or above that was not there before, or a higher score.
    Resolved: none of the targeted findings is left at warning or above; when the learning
    probe found the original not learning (or diverging), that finding is a target of every
    remedy, so a remedy resolves nothing while the probe still says so. Improved: a targeted
    finding went down in severity, or the score went down. Else no effect.
    """
    old, new = _worst(before), _worst(after)
    # The learning probe's verdict is every remedy's target: a cure learns.
    targets = (set(targets) or set(old)) | (set(old) & TRAINING)
    appeared = any(new.get(i, -1) > old.get(i, -1) for i in new)
    if appeared or score(after) > score(before):
        return Verdict.WORSE
    if not any(i in new for i in targets):
        return Verdict.RESOLVED
    if any(new.get(i, -1) < old.get(i, -1) for i in targets) or score(after) < score(before):
        return Verdict.IMPROVED
    return Verdict.NO_EFFECT


def what_got_worse(before: Report, after: Report) -> str:
    """For a "made worse" verdict: the findings at warning or above that appeared or rose,
    e.g. ``exploding rose to warning``; or that the score rose."""
    old, new = _worst(before), _worst(after)
    names = {Severity.WARNING.rank: "warning", Severity.ERROR.rank: "error"}
    rose = [
        f"{finding} {'appeared at' if finding not in old else 'rose to'} {names.get(rank, rank)}"
        for finding, rank in sorted(new.items())
        if rank > old.get(finding, -1)
    ]
    return "; ".join(rose) or f"the score rose from {score(before)} to {score(after)}"
