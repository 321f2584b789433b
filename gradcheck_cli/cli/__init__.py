"""The ``gradcheck`` command group. Each command lives in its own module and stays thin."""

from __future__ import annotations

import sys
from typing import Any

import click

from gradcheck_cli.cli.compare import compare_command
from gradcheck_cli.cli.diagnose import diagnose_command
from gradcheck_cli.cli.explain import explain_command
from gradcheck_cli.cli.fix import fix_command
from gradcheck_cli.cli.process import exit_now, run_as_program
from gradcheck_cli.cli.remedies import remedies_command
from gradcheck_cli.findings import ExitCode
from gradcheck_cli.version import __version__


class _Gradcheck(click.Group):
    """The command group; run as a program (``gradcheck``, ``python -m gradcheck_cli``), it exits
    as soon as the command is done, without waiting for threads a model left running."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        run_as_program()
        try:
            return super().__call__(*args, **kwargs)
        except SystemExit as done:
            exit_now(done.code)

    def main(  # type: ignore[override]
        self, *args: Any, standalone_mode: bool = True, **kwargs: Any
    ) -> Any:
        """Click's own handling, except that a usage error is one line on stderr (exit 2):
        ``gradcheck: error: No such option '--bogus'. Did you mean '--loss'? (see 'gradcheck
        diagnose --help')``, not a usage block, a hint and an error line; and a path option
        given an empty value is refused before click reads it as "not given"."""
        run: Any = super().main
        empty = _empty_path(args[0] if args else kwargs.get("args"))
        if empty is not None and standalone_mode:
            click.echo(f"gradcheck: error: {empty} was given an empty path; name a file", err=True)
            sys.exit(ExitCode.USAGE_ERROR)
        if not standalone_mode:
            return run(*args, standalone_mode=False, **kwargs)
        try:
            code = run(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "gradcheck"
            if type(exc).__name__ == "NoArgsIsHelpError":  # `gradcheck` alone (click 8.2+)
                names = ", ".join(self.list_commands(exc.ctx)) if exc.ctx is not None else ""
                click.echo(
                    f"gradcheck: error: name a command: {names} (see '{where} --help')", err=True
                )
                sys.exit(ExitCode.USAGE_ERROR)
            click.echo(f"gradcheck: error: {exc.format_message()} (see '{where} --help')", err=True)
            sys.exit(ExitCode.USAGE_ERROR)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:  # Ctrl-C while click itself was reading: as everywhere else
            click.echo("gradcheck: interrupted", err=True)
            sys.exit(ExitCode.USAGE_ERROR)
        sys.exit(code if isinstance(code, int) else 0)


# Options naming a file or folder: an empty value would be taken as "not given" or as ".".
_PATH_OPTIONS = frozenset(
    {
        "--report",
        "--junit",
        "--baseline",
        "--plot",
        "--plan",
        "--output",
        "--data",
        "--weights",
        "--config",
    }
)


def _empty_path(args: Any) -> str | None:
    """The first path option given an empty value on the command line, if any."""
    argv = list(sys.argv[1:] if args is None else args)
    for i, arg in enumerate(argv):
        name, eq, rest = str(arg).partition("=")
        if name in _PATH_OPTIONS and (
            (eq and not rest) or (not eq and i + 1 < len(argv) and argv[i + 1] == "")
        ):
            return name
    return None


@click.group(cls=_Gradcheck, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="gradcheck")
def main() -> None:
    """Diagnose vanishing, exploding, NaN, dead and saturated gradients in PyTorch models."""


main.add_command(diagnose_command)
main.add_command(compare_command)
main.add_command(explain_command)
main.add_command(fix_command)
main.add_command(remedies_command)
