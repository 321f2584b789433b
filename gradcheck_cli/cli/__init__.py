"""The ``gradcheck`` command group. Each command lives in its own module and stays thin."""

from __future__ import annotations

from typing import Any

import click

from gradcheck_cli import __version__
from gradcheck_cli.cli.compare import compare_command
from gradcheck_cli.cli.diagnose import diagnose_command
from gradcheck_cli.cli.explain import explain_command
from gradcheck_cli.cli.fix import fix_command
from gradcheck_cli.cli.process import exit_now
from gradcheck_cli.cli.remedies import remedies_command


class _Gradcheck(click.Group):
    """The command group; run as a program (``gradcheck``, ``python -m gradcheck_cli``), it exits
    as soon as the command is done, without waiting for threads a model left running."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except SystemExit as done:
            exit_now(done.code)


@click.group(cls=_Gradcheck, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="gradcheck")
def main() -> None:
    """Diagnose vanishing, exploding, NaN, dead and saturated gradients in PyTorch models."""


main.add_command(diagnose_command)
main.add_command(compare_command)
main.add_command(explain_command)
main.add_command(fix_command)
main.add_command(remedies_command)
