"""``gradcheck compare OLD NEW``: the per-layer and per-finding difference of two reports."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gradcheck_cli.cli.diagnose import check_summary, emit
from gradcheck_cli.cli.errors import user_errors
from gradcheck_cli.cli.options import SectionedCommand, choice, debug_option, format_option
from gradcheck_cli.compare import compare, load_report
from gradcheck_cli.config import Settings, parse_enum
from gradcheck_cli.findings import ExitCode, FailOn
from gradcheck_cli.report import OutputFormat


@click.command("compare", cls=SectionedCommand)
@click.argument("old", type=click.Path(dir_okay=False))
@click.argument("new", type=click.Path(dir_okay=False))
@format_option(f.value for f in OutputFormat)
@click.option(
    "--fail-on",
    type=choice(FailOn),
    default="error",
    show_default=True,
    help="Lowest severity of a new finding that is a regression.",
)
@click.option(
    "--regression-factor",
    type=float,
    default=10.0,
    show_default=True,
    help="How far a layer's gradient RMS may move away from the healthy band of gradient-to-weight ratios before it is a regression.",
)
@debug_option
def compare_command(
    old: str, new: str, output_format: str, fail_on: str, regression_factor: float, debug: bool
) -> None:
    """Compare report NEW with baseline OLD; exit 1 on a regression, 0 otherwise."""
    with user_errors(debug):
        if OutputFormat(output_format) is OutputFormat.GITHUB:
            check_summary({"the OLD report": Path(old), "the NEW report": Path(new)})
        settings = Settings(regression_factor=regression_factor)  # validates the factor
        level = parse_enum(FailOn, fail_on, "--fail-on")
        comparison = compare(
            load_report(Path(old)),
            load_report(Path(new)),
            factor=settings.regression_factor,
            fail_on=level,
        )
        emit(OutputFormat(output_format), None, comparison, level)
    sys.exit(ExitCode.FINDINGS if comparison.regressed else ExitCode.OK)
