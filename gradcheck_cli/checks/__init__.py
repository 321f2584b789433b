"""The checks, one per file, and the registry that runs them.

``CHECKS`` maps each finding id to its check; ``run_checks`` evaluates them in that order with
per-check options (defaults overridden by configuration).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gradcheck_cli.checks.base import Check
from gradcheck_cli.checks.dead_units import DeadUnits
from gradcheck_cli.checks.exploding import Exploding
from gradcheck_cli.checks.no_gradient import NoGradient
from gradcheck_cli.checks.nonfinite import NonFinite
from gradcheck_cli.checks.saturation import Saturation
from gradcheck_cli.checks.vanishing import Vanishing
from gradcheck_cli.findings import Finding
from gradcheck_cli.stats import ModelStats

CHECKS: dict[str, type[Check]] = {
    cls.id: cls for cls in (NonFinite, Vanishing, Exploding, DeadUnits, Saturation, NoGradient)
}


def default_options() -> dict[str, Any]:
    """Each check's default options, by finding id."""
    return {check_id: cls.Options() for check_id, cls in CHECKS.items()}


def run_checks(stats: ModelStats, options: Mapping[str, Any] | None = None) -> list[Finding]:
    """Evaluate every check on ``stats``; ``options`` maps finding ids to Options objects."""
    chosen = {**default_options(), **(options or {})}
    findings: list[Finding] = []
    for check_id, cls in CHECKS.items():
        findings.extend(cls().evaluate(stats, chosen[check_id]))
    return findings


__all__ = ["CHECKS", "Check", "default_options", "run_checks"]
