"""Turning exceptions into one line on stderr and a named exit code."""

from __future__ import annotations

import contextlib
import sys
import traceback
import warnings
from collections.abc import Iterator

import click

from gradcheck_cli.errors import RunTimeout, UsageError, what_happened
from gradcheck_cli.findings import ExitCode


@contextlib.contextmanager
def user_errors(debug: bool) -> Iterator[None]:
    """Report a :class:`UsageError` as one line and exit 2; any other error exits 3.

    ``SystemExit`` and ``BaseException`` subclasses raised in the block can only come from the
    user's code (gradcheck exits after it): they exit 2 as well. With ``debug`` the traceback
    is printed as well.
    """
    # Warnings raised on the way (torch's, the model's) are held back: a bad input gets its one
    # line alone (the warnings come with --debug); any other run shows them afterwards.
    held: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as held:
            with _failures(debug):
                yield
    except SystemExit as done:
        if done.code != ExitCode.USAGE_ERROR or debug:
            _replay(held)
        raise
    _replay(held)


def _replay(held: list[warnings.WarningMessage]) -> None:
    for w in held:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)
    held.clear()


@contextlib.contextmanager
def _failures(debug: bool) -> Iterator[None]:
    try:
        yield
    except UsageError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"gradcheck: error: {exc}", err=True)
        sys.exit(ExitCode.USAGE_ERROR)
    except RunTimeout as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"gradcheck: error: {exc}", err=True)
        sys.exit(ExitCode.USAGE_ERROR)
    except KeyboardInterrupt:
        click.echo("gradcheck: interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except Exception as exc:
        if debug:
            traceback.print_exc()
        click.echo(
            f"gradcheck: internal error: {type(exc).__name__}: {exc} (a bug in gradcheck; "
            "rerun with --debug and report the traceback)",
            err=True,
        )
        sys.exit(ExitCode.INTERNAL_ERROR)
    except BaseException as exc:
        # Nothing of gradcheck's exits inside this block: sys.exit() or a BaseException
        # subclass comes from the user's code where the library does not wrap it. It must not
        # become gradcheck's exit code (exit 0 would pass a CI job that measured nothing).
        if debug:
            traceback.print_exc()
        click.echo(
            f"gradcheck: error: the model's code {what_happened(exc)} while gradcheck was "
            "running it (rerun with --debug for the traceback)",
            err=True,
        )
        sys.exit(ExitCode.USAGE_ERROR)
