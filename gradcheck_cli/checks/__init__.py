"""The checks, one per file, and the registry that runs them.

``CHECKS`` maps each finding id to its check; ``run_checks`` evaluates them in that order with
per-check options (defaults overridden by configuration).
"""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from gradcheck_cli.checks.base import Check
from gradcheck_cli.checks.dead_units import DeadUnits
from gradcheck_cli.checks.diverging import Diverging
from gradcheck_cli.checks.exploding import Exploding
from gradcheck_cli.checks.no_gradient import NoGradient
from gradcheck_cli.checks.nonfinite import NonFinite
from gradcheck_cli.checks.not_learning import NotLearning, refuted
from gradcheck_cli.checks.nothing_measured import NothingMeasured
from gradcheck_cli.checks.saturation import Saturation
from gradcheck_cli.checks.underflow import Underflow
from gradcheck_cli.checks.vanishing import Vanishing
from gradcheck_cli.checks.vanishing_over_time import VanishingOverTime
from gradcheck_cli.findings import Finding, Severity
from gradcheck_cli.stats import ModelStats

CHECKS: dict[str, type[Check]] = {
    cls.id: cls
    for cls in (
        NothingMeasured,
        NonFinite,
        Vanishing,
        VanishingOverTime,
        Exploding,
        DeadUnits,
        Saturation,
        NoGradient,
        Underflow,
        NotLearning,
        Diverging,
    )
}


def default_options() -> dict[str, Any]:
    """Each check's default options, by finding id."""
    return {check_id: cls.Options() for check_id, cls in CHECKS.items()}


class RuleSeverity(str, enum.Enum):
    """A per-check severity override from the config: ``off`` disables the check."""

    OFF = "off"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class Rule:
    """Per-check settings, as a linter's per-rule configuration.

    ``severity`` replaces the severity of every finding of the check (``off`` drops the check);
    ``ignore_layers`` are glob patterns of layer names the check does not see at all.
    """

    severity: RuleSeverity | None = None
    ignore_layers: tuple[str, ...] = ()


def _without(stats: ModelStats, patterns: tuple[str, ...]) -> ModelStats:
    if not patterns:
        return stats
    kept = tuple(
        layer
        for layer in stats.layers
        if not any(fnmatch.fnmatchcase(layer.display_name, p) for p in patterns)
    )
    return replace(stats, layers=kept)


def run_checks(
    stats: ModelStats,
    options: Mapping[str, Any] | None = None,
    rules: Mapping[str, Rule] | None = None,
) -> list[Finding]:
    """Evaluate every check on ``stats``; when the learning probe ran and the model learns,
    the findings it refutes are information (:func:`not_learning.refuted`).

    ``options`` maps finding ids to Options objects (thresholds); ``rules`` maps finding ids
    (or ``"*"`` for all checks) to :class:`Rule` settings.
    """
    chosen = {**default_options(), **(options or {})}
    rules = rules or {}
    everywhere = rules.get("*", Rule())
    findings: list[Finding] = []
    for check_id, cls in CHECKS.items():
        rule = rules.get(check_id, Rule())
        if rule.severity is RuleSeverity.OFF:
            continue
        seen = _without(stats, everywhere.ignore_layers + rule.ignore_layers)
        for finding in cls().evaluate(seen, chosen[check_id]):
            if rule.severity is not None:
                finding = replace(finding, severity=Severity(rule.severity.value))
            findings.append(finding)
    return refuted(findings, stats.learning)


__all__ = ["CHECKS", "Check", "Rule", "RuleSeverity", "default_options", "run_checks"]
