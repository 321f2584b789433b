"""``gradcheck diagnose MODEL``: build settings, call the library, render, return an exit code."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from gradcheck_cli.api import diagnose
from gradcheck_cli.cli.errors import user_errors
from gradcheck_cli.cli.files import report_target, write_atomic
from gradcheck_cli.cli.options import choice, measure_options, prepare
from gradcheck_cli.findings import exit_code
from gradcheck_cli.report import FILE_FORMATS, RENDERERS, OutputFormat


@click.command("diagnose")
@click.argument("model_spec", metavar="MODEL")
@measure_options
@click.option(
    "--format",
    "output_format",
    type=choice(OutputFormat),
    default="rich",
    show_default=True,
    help="What to print on stdout.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False),
    help="Also write the report to this .yaml/.json file.",
)
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(dir_okay=False),
    help="Apply a plan.yaml from 'gradcheck fix' to the model before measuring (then --weights loads its state_dict.pt).",
)
def diagnose_command(
    model_spec: str,
    output_format: str,
    report_path: str | None,
    plan_path: str | None,
    config_path: str | None,
    input_shapes: tuple[str, ...],
    weights: str | None,
    trust_pickle: bool,
    quiet: bool,
    debug: bool,
    **flags: Any,
) -> None:
    """Measure MODEL's gradients over a few backward passes and report per-layer findings.

    MODEL is path/to/file.py, path/to/file.py:NAME, package.module:NAME or a saved .pt file.
    Exit code: 0 healthy (nothing at --fail-on), 1 findings at --fail-on, 2 usage error.
    """
    with user_errors(debug):
        report_file = report_target(report_path, FILE_FORMATS)
        job = prepare(
            model_spec,
            config_path=config_path,
            input_shapes=input_shapes,
            weights=weights,
            trust_pickle=trust_pickle,
            flags=flags,
            plan=plan_path,
        )
        with progress(enabled=not quiet and sys.stderr.isatty()) as on_step:
            report = diagnose(
                job.loaded.module,
                job.inputs,
                job.loaded.loss_fn,
                settings=job.settings,
                model_name=job.loaded.name,
                on_step=on_step,
            )
        if report_file is not None:
            render = RENDERERS[FILE_FORMATS[report_file.suffix.lower()]]
            write_atomic(report_file, lambda handle: render(report, handle, color=False))
            if not quiet:
                click.echo(f"gradcheck: wrote {report_file}", err=True)
        RENDERERS[OutputFormat(output_format)](report, sys.stdout, color=use_color())
        sys.stdout.flush()
    sys.exit(exit_code(report, job.settings.fail_on))


def use_color() -> bool:
    """Colour only on a terminal, and never with NO_COLOR set."""
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


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


__all__ = ["diagnose_command", "progress", "use_color"]
