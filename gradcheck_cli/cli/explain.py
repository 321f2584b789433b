"""``gradcheck explain [ID]``: a finding's or a remedy's documentation; without an id, the list."""

from __future__ import annotations

import inspect
import re
import shutil

import click

from gradcheck_cli.checks import CHECKS
from gradcheck_cli.remedies import AUTOMATIC, REMEDIES


@click.command("explain")
@click.argument("topic", metavar="[ID]", required=False)
def explain_command(topic: str | None) -> None:
    """Explain a finding (symptom, why it matters, remedy, references, thresholds) or a remedy
    (what it does, whether `fix` applies it). Without an ID, list every finding and remedy.
    IDs are case-insensitive."""
    if topic is None:
        _list()
        return
    wanted = topic.strip().lower().replace("_", "-")
    if wanted in CHECKS:
        _finding(wanted)
    elif wanted in REMEDIES:
        _remedy(wanted)
    else:
        raise click.BadParameter(
            f"'{topic}' is neither a finding nor a remedy; known: "
            f"{', '.join([*CHECKS, *REMEDIES])}",
            param_hint="ID",
        )


def _list() -> None:
    width = max(len(i) for i in [*CHECKS, *REMEDIES])
    columns = min(shutil.get_terminal_size().columns, 100)
    click.echo("Findings (gradcheck explain ID):")
    for check in CHECKS.values():
        click.echo(_entry(f"  {check.id:<{width}}  ", check.__doc__ or check.name, columns))
    click.echo("\nRemedies (gradcheck explain ID; * = applied by gradcheck fix, others advice):")
    for remedy_id, text in REMEDIES.items():
        mark = "*" if remedy_id in AUTOMATIC else " "
        click.echo(_entry(f"  {remedy_id:<{width}}{mark} ", text, columns))


def _entry(head: str, text: str, columns: int) -> str:
    """``head`` then the first sentence of ``text``, wrapped under itself (a hanging indent)."""
    first = inspect.cleandoc(text).split("\n\n")[0].replace("\n", " ")
    # A sentence ends at a full stop followed by a capital, so "He et al. 2015" stays whole.
    sentence = re.split(r"(?<=\.)\s+(?=[A-Z])", first, maxsplit=1)[0]
    return click.wrap_text(
        sentence,
        width=max(columns, len(head) + 30),
        initial_indent=head,
        subsequent_indent=" " * len(head),
        preserve_paragraphs=False,
    )


def _finding(finding_id: str) -> None:
    check = CHECKS[finding_id]
    click.echo(f"{check.id}: {check.name}\n")
    click.echo(inspect.cleandoc(check.__doc__ or ""))
    options = check.Options()
    fields = vars(options) if hasattr(options, "__dict__") else {}
    if fields:
        click.echo("\nThresholds (config key = default):")
        for name, default in fields.items():
            click.echo(f"  thresholds.{check.id}.{name.replace('_', '-')} = {default}")


def _remedy(remedy_id: str) -> None:
    kind = "applied by `gradcheck fix`" if remedy_id in AUTOMATIC else "advice only"
    click.echo(f"{remedy_id}: remedy ({kind})\n")
    click.echo(REMEDIES[remedy_id])
    findings = [c.id for c in CHECKS.values() if remedy_id in c.remedies]
    if findings:
        click.echo(f"\nSuggested by: {', '.join(findings)}")
