"""``gradcheck diagnose MODEL``: build settings, call the library, render, return an exit code."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import click

from gradcheck_cli.atomic import write_atomic, write_error
from gradcheck_cli.cli.errors import user_errors
from gradcheck_cli.cli.files import check_distinct, check_output, input_files, report_target
from gradcheck_cli.cli.options import (
    COLOR_KEY,
    MODEL_HELP,
    SectionedCommand,
    format_option,
    measure_options,
    prepare,
)
from gradcheck_cli.cli.process import (
    leader,
    reader_may_leave,
    report_stream,
    running_user_code,
)
from gradcheck_cli.compare import Comparison, compare, load_report
from gradcheck_cli.findings import ExitCode, FailOn, Report, exit_code
from gradcheck_cli.report import (
    COMPARE_RENDERERS,
    FILE_FORMATS,
    RENDERERS,
    OutputFormat,
    RenderOptions,
    renderer,
)
from gradcheck_cli.report.plot import check_target as check_plot
from gradcheck_cli.report.plot import plot as draw


@click.command("diagnose", cls=SectionedCommand, epilog=MODEL_HELP)
@click.argument("model_spec", metavar="MODEL")
@measure_options
@format_option(f.value for f in OutputFormat)
@click.option(
    "--report",
    "report_paths",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Also write the report to this file; format by extension: .yaml/.yml, .json, .xml (JUnit), .md (Markdown). Repeatable.",
)
@click.option(
    "--junit",
    "junit_path",
    type=click.Path(dir_okay=False),
    help="Also write a JUnit XML report to this file.",
)
@click.option(
    "--baseline",
    "baseline_path",
    type=click.Path(dir_okay=False),
    help="An earlier YAML/JSON report: exit 1 only on a regression against it.",
)
@click.option(
    "--regression-factor",
    type=float,
    help="How far a layer's gradient RMS may move away from the healthy band of gradient-to-weight ratios before it is a regression.  [default: 10]",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    help="Also draw the gradient flow (and, where measured, the temporal profile and training trends) to this .png/.svg/.pdf (needs matplotlib).",
)
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(dir_okay=False),
    help="Apply a plan.yaml from 'gradcheck fix' before measuring (then --weights loads its state_dict.pt).",
)
@click.option(
    "--all-layers",
    is_flag=True,
    help="List every layer in the terminal table instead of folding runs of healthy repeated structure (YAML/JSON always hold every layer).",
)
def diagnose_command(
    model_spec: str,
    output_format: str,
    report_paths: tuple[str, ...],
    junit_path: str | None,
    baseline_path: str | None,
    plot_path: str | None,
    plan_path: str | None,
    all_layers: bool,
    quiet: bool,
    debug: bool,
    **flags: Any,
) -> None:
    """Measure MODEL's gradients over a few backward passes and report per-layer findings.

    Exit code: 0 healthy (nothing at --fail-on), 1 findings at --fail-on (with --baseline: a
    regression), 2 bad input.
    """
    first = leader()  # under torchrun, rank 0 prints and writes; the other ranks stay silent
    if not first:
        quiet = True
        click.get_current_context().params["quiet"] = True
    with user_errors(debug):
        inputs = input_files(
            model_spec,
            config=flags.get("config_path"),
            data=flags.get("data_path"),
            weights=flags.get("weights"),
            plan=plan_path,
        )
        targets: list[tuple[Path | None, OutputFormat | None]] = [
            (report_target(p, FILE_FORMATS, inputs=inputs), None) for p in report_paths
        ]
        # The baseline is read before anything is written: a --report may replace it (that is
        # how a baseline is updated), but no other format may.
        others = (
            {**inputs, "the --baseline report": Path(baseline_path)} if baseline_path else inputs
        )
        if junit_path is not None:
            junit = report_target(junit_path, {}, any_suffix=True, inputs=others, label="--junit")
            targets.append((junit, OutputFormat.JUNIT))
        if plot_path is not None:
            check_plot(check_output("--plot", Path(plot_path), others))
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        github = OutputFormat(output_format) is OutputFormat.GITHUB and bool(summary)
        check_distinct(
            [("--report", Path(p)) for p in report_paths]
            + ([("--junit", Path(junit_path))] if junit_path is not None else [])
            + ([("--plot", Path(plot_path))] if plot_path is not None else [])
            + ([("GITHUB_STEP_SUMMARY", Path(summary or ""))] if github else [])
        )
        if github:
            check_summary(others)
        from gradcheck_cli.api import diagnose  # imports torch: not for --help
        from gradcheck_cli.distributed import leave

        baseline = load_report(Path(baseline_path)) if baseline_path else None
        # The model's own prints (import, build, forward) must not land in the report.
        with running_user_code(flags.pop("timeout", None)):
            job = prepare(model_spec, flags, plan=plan_path)
            with progress(enabled=not quiet and sys.stderr.isatty()) as on_step:
                report = diagnose(
                    job.loaded.module,
                    job.inputs,
                    job.loaded.loss_fn,
                    settings=job.settings,
                    model_name=job.loaded.name,
                    on_step=on_step,
                )
        fail_on = job.settings.fail_on
        comparison = None
        if baseline is not None:
            comparison = compare(
                baseline, report.to_dict(), factor=job.settings.regression_factor, fail_on=fail_on
            )
        if first:
            _output(
                report, comparison, targets, plot_path, output_format, all_layers, quiet, fail_on
            )
        leave()  # under torchrun: every rank waits here for rank 0's writes, then exits
    if comparison is not None:
        sys.exit(ExitCode.FINDINGS if comparison.regressed else ExitCode.OK)
    sys.exit(exit_code(report, fail_on))


def _output(
    report: Report,
    comparison: Comparison | None,
    targets: list[tuple[Path | None, OutputFormat | None]],
    plot_path: str | None,
    output_format: str,
    all_layers: bool,
    quiet: bool,
    fail_on: FailOn,
) -> None:
    """Write the report files and the plot, then print the report (or the comparison)."""
    for path, forced in targets:
        assert path is not None
        write_atomic(path, _writer(report, forced or FILE_FORMATS[path.suffix.lower()], fail_on))
        if not quiet:
            click.echo(f"gradcheck: wrote {path}", err=True)
    if plot_path is not None:
        draw(report, Path(plot_path))
        if not quiet:
            click.echo(f"gradcheck: wrote {plot_path}", err=True)
    emit(
        OutputFormat(output_format),
        report,
        comparison,
        fail_on,
        options=RenderOptions(all_layers=all_layers),
    )


def _writer(report: Report, fmt: OutputFormat, fail_on: FailOn) -> Callable[[TextIO], None]:
    def write(handle: TextIO) -> None:
        RENDERERS[fmt](report, handle, fail_on=fail_on)

    return write


def emit(
    fmt: OutputFormat,
    report: Report | None,
    comparison: Comparison | None,
    fail_on: FailOn,
    *,
    options: RenderOptions | None = None,
) -> None:
    """Render to stdout (a comparison when there is one; a report with the layout ``options``)
    and, for the ``github`` format, append the Markdown summary to ``$GITHUB_STEP_SUMMARY`` when
    GitHub Actions sets it."""
    with reader_may_leave():
        if comparison is not None:
            COMPARE_RENDERERS[fmt](comparison, report_stream(), color=use_color(), fail_on=fail_on)
        elif report is not None:
            render = renderer(fmt, options or RenderOptions())
            render(report, report_stream(), color=use_color(), fail_on=fail_on)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if fmt is OutputFormat.GITHUB and summary:
        text = io.StringIO()
        if report is not None:
            RENDERERS[OutputFormat.MARKDOWN](report, text, fail_on=fail_on)
        if comparison is not None:
            COMPARE_RENDERERS[OutputFormat.MARKDOWN](comparison, text, fail_on=fail_on)
        try:
            # Appended (GitHub collects every step's summary in the one file), in one write.
            with open(summary, "a", encoding="utf-8") as handle:
                handle.write(text.getvalue())
        except OSError as exc:
            raise write_error(Path(summary), exc) from exc


def check_summary(inputs: Mapping[str, Path]) -> None:
    """Refuse a ``$GITHUB_STEP_SUMMARY`` that is one of the run's inputs, a source file, or
    in a folder that does not exist, before any work."""
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        check_output("GITHUB_STEP_SUMMARY", Path(summary), inputs)


def use_color() -> bool:
    """``--color always|never``; with ``auto`` (the default), colour on a terminal unless
    NO_COLOR is set, or wherever FORCE_COLOR is set (https://no-color.org, force-color.org)."""
    context = click.get_current_context(silent=True)
    choice = context.meta.get(COLOR_KEY, "auto") if context is not None else "auto"
    if choice != "auto":
        return bool(choice == "always")
    if os.environ.get("NO_COLOR"):
        return False
    return bool(os.environ.get("FORCE_COLOR")) or report_stream().isatty()


@contextmanager
def progress(*, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr for the backward passes, or a silent observer."""
    if not enabled:
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("backward passes"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("steps", total=None)

        def on_step(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield on_step
