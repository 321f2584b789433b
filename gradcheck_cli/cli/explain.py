"""``gradcheck explain FINDING_ID``: a finding's documentation, from the check's docstring."""

from __future__ import annotations

import inspect

import click

from gradcheck_cli.checks import CHECKS


@click.command("explain")
@click.argument("finding_id", type=click.Choice(list(CHECKS)))
def explain_command(finding_id: str) -> None:
    """Explain a finding: symptom, why it matters, remedy, references, thresholds."""
    check = CHECKS[finding_id]
    click.echo(f"{check.id}: {check.name}\n")
    click.echo(inspect.cleandoc(check.__doc__ or ""))
    options = check.Options()
    fields = vars(options) if hasattr(options, "__dict__") else {}
    if fields:
        click.echo("\nThresholds (config key = default):")
        for name, default in fields.items():
            click.echo(f"  thresholds.{check.id}.{name.replace('_', '-')} = {default}")
