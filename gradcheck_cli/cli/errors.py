"""Turning exceptions into one line on stderr and a named exit code."""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator

import click

from gradcheck_cli.errors import UsageError
from gradcheck_cli.findings import ExitCode


@contextlib.contextmanager
def user_errors(debug: bool) -> Iterator[None]:
    """Report a :class:`UsageError` as one line and exit 2; any other error exits 3.

    With ``debug`` the traceback is printed as well.
    """
    try:
        yield
    except UsageError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"gradcheck: error: {exc}", err=True)
        sys.exit(ExitCode.USAGE_ERROR)
    except KeyboardInterrupt:
        click.echo("gradcheck: interrupted", err=True)
        sys.exit(ExitCode.USAGE_ERROR)
    except Exception as exc:
        if debug:
            traceback.print_exc()
        click.echo(
            f"gradcheck: internal error: {type(exc).__name__}: {exc} (a bug in gradcheck; "
            "rerun with --debug and report the traceback)",
            err=True,
        )
        sys.exit(ExitCode.INTERNAL_ERROR)
