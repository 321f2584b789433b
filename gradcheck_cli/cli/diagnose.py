"""``gradcheck diagnose MODEL``: build settings, call the library, render, return an exit code."""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from gradcheck_cli.api import diagnose
from gradcheck_cli.cli.errors import user_errors
from gradcheck_cli.config import Device, Settings, load_settings, parse_enum
from gradcheck_cli.errors import ConfigError
from gradcheck_cli.findings import FailOn, Report, exit_code
from gradcheck_cli.loading import InputShape, LossKind, load_model, shapes_factory
from gradcheck_cli.report import FILE_FORMATS, RENDERERS, OutputFormat


def _choice(kind: type[Any]) -> click.Choice:
    return click.Choice([m.value for m in kind])


@click.command("diagnose")
@click.argument("model_spec", metavar="MODEL")
@click.option("--steps", type=int, help="Backward passes, each on a fresh batch [default: 3].")
@click.option("--seed", type=int, help="Seed of the batches and of dropout [default: 0].")
@click.option("--batch-size", type=int, help="Batch size of synthetic inputs [default: 16].")
@click.option("--device", type=_choice(Device), help="Where to run [default: auto].")
@click.option(
    "--loss", type=_choice(LossKind), help="Loss when the file has no loss_fn [default: auto]."
)
@click.option(
    "--input-shape",
    "input_shapes",
    multiple=True,
    metavar="SHAPE[:DTYPE[:LOW-HIGH]]",
    help="One positional input without the batch dim, e.g. 3x32x32 or 128:int64:0-50257. Repeat for several inputs.",
)
@click.option(
    "--weights",
    type=click.Path(dir_okay=False),
    help="A state dict to load into the model (weights only).",
)
@click.option(
    "--trust-pickle",
    is_flag=True,
    help="Allow loading a pickled module (.pt): this runs code from the file.",
)
@click.option(
    "--format",
    "output_format",
    type=_choice(OutputFormat),
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
    "--fail-on", type=_choice(FailOn), help="Lowest severity that exits 1 [default: error]."
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Config file (default: gradcheck.yaml or [tool.gradcheck] found from the working directory).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress or status messages on stderr.")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
def diagnose_command(
    model_spec: str,
    output_format: str,
    report_path: str | None,
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
        settings = _settings(config_path, flags)
        report_file = _report_target(report_path)
        shapes = [InputShape.parse(s) for s in input_shapes]
        loaded = load_model(model_spec, trust_pickle=trust_pickle, weights=weights)
        if shapes:
            import torch

            inputs: Any = shapes_factory(shapes, torch.device("cpu"))
        else:
            inputs = loaded.example_inputs
        with _progress(enabled=not quiet and sys.stderr.isatty()) as on_step:
            report = diagnose(
                loaded.module,
                inputs,
                loaded.loss_fn,
                settings=settings,
                model_name=loaded.name,
                on_step=on_step,
            )
        if report_file is not None:
            _write_atomic(report_file, report)
            if not quiet:
                click.echo(f"gradcheck: wrote {report_file}", err=True)
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        RENDERERS[OutputFormat(output_format)](report, sys.stdout, color=color)
        sys.stdout.flush()
    sys.exit(exit_code(report, settings.fail_on))


def _settings(config_path: str | None, flags: dict[str, Any]) -> Settings:
    settings, _ = load_settings(Path(config_path) if config_path else None, cwd=Path.cwd())
    given = {k: v for k, v in flags.items() if v is not None}
    for key, kind in (("device", Device), ("loss", LossKind), ("fail_on", FailOn)):
        if key in given:
            given[key] = parse_enum(kind, given[key], f"--{key.replace('_', '-')}")
    try:
        return dataclasses.replace(settings, **given)
    except TypeError as exc:  # pragma: no cover - click validates names
        raise ConfigError(str(exc)) from exc


def _report_target(report_path: str | None) -> Path | None:
    """Validate ``--report`` before any work is done."""
    if report_path is None:
        return None
    path = Path(report_path)
    if path.suffix.lower() not in FILE_FORMATS:
        raise ConfigError(f"--report '{report_path}' must end in .yaml, .yml or .json")
    if not path.parent.resolve().is_dir():
        raise ConfigError(f"--report '{report_path}': folder '{path.parent}' does not exist")
    return path


def _write_atomic(path: Path, report: Report) -> None:
    """Write to a temporary file beside ``path`` and rename it over ``path``."""
    render = RENDERERS[FILE_FORMATS[path.suffix.lower()]]
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            render(report, handle, color=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _progress(*, enabled: bool) -> Iterator[Callable[[int, int], None]]:
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
    ) as progress:
        task = progress.add_task("steps", total=None)

        def on_step(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield on_step
