"""Helpers for the user's own test suite: assert that a model's gradients are healthy.

    from gradcheck_cli.testing import assert_healthy_gradients

    def test_my_model_trains():
        assert_healthy_gradients(build_model(), lambda b: torch.randn(b, 3, 32, 32))

The failure message lists the report's findings, so a red test says what is wrong and what to
try. With the package installed, pytest also gets a ``gradcheck`` fixture that is this function.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from gradcheck_cli.api import diagnose
from gradcheck_cli.config import (
    AUTO,
    ConfigChoice,
    Settings,
    apply_mapping,
    parse_enum,
    project_settings,
)
from gradcheck_cli.findings import ExitCode, FailOn, Report, Severity, exit_code
from gradcheck_cli.inputs.calling import InputFactory, Inputs, LossFn


def failure_message(report: Report, fail_on: FailOn) -> str:
    """The findings at or above ``fail_on``, one paragraph each."""
    threshold = Severity(fail_on.value).rank if fail_on is not FailOn.NEVER else 99
    failing = [f for f in report.findings if f.severity.rank >= threshold]
    lines = [
        f"gradcheck: {report.model.name} has {len(failing)} finding(s) at or above "
        f"{fail_on.value} (status {report.status.value}):"
    ]
    for f in sorted(failing, key=lambda f: -f.severity.rank):
        layers = ", ".join(f.layers[:6]) + (
            f" (+{len(f.layers) - 6} more)" if len(f.layers) > 6 else ""
        )
        lines.append(f"  [{f.severity.value}] {f.id}: {f.message}")
        if layers:
            lines.append(f"      layers: {layers}")
        if f.remedies:
            lines.append(f"      remedies: {', '.join(f.remedies)} (gradcheck explain {f.id})")
    return "\n".join(lines)


def assert_healthy_gradients(
    model: nn.Module,
    inputs: Inputs | InputFactory | None = None,
    loss_fn: LossFn | None = None,
    *,
    fail_on: FailOn | str | None = None,
    settings: Settings | None = None,
    config: ConfigChoice = AUTO,
    **options: Any,
) -> Report:
    """Diagnose ``model`` and raise AssertionError if a finding reaches ``fail_on``.

    Takes the same arguments as :func:`gradcheck_cli.diagnose`, and reads the same project
    config as ``gradcheck diagnose`` (``config``); ``fail_on`` defaults to the config's
    ``fail-on`` (``error`` without one). Returns the report when healthy.
    """
    chosen = apply_mapping(project_settings(settings, config), options, source="gradcheck")
    level = chosen.fail_on if fail_on is None else parse_enum(FailOn, fail_on, "fail_on")
    report = diagnose(model, inputs, loss_fn, settings=chosen)
    if exit_code(report, level) is ExitCode.FINDINGS:
        raise AssertionError(failure_message(report, level))
    return report
