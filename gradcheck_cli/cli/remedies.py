"""``gradcheck remedies``: every remedy id and what it does."""

from __future__ import annotations

import click

from gradcheck_cli.remedies import AUTOMATIC, REMEDIES


@click.command("remedies")
def remedies_command() -> None:
    """List the remedies, which ones `gradcheck fix` applies, and what each does."""
    for remedy_id, text in REMEDIES.items():
        kind = "applied by fix" if remedy_id in AUTOMATIC else "advice only"
        click.echo(f"{remedy_id} ({kind})\n  {text}\n")
