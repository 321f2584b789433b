"""``gradcheck fix MODEL``: try remedies on copies, keep what measurably helps, save it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from gradcheck_cli.choices import Activation, BranchInit, InitScheme
from gradcheck_cli.cli.diagnose import progress, use_color
from gradcheck_cli.cli.errors import user_errors
from gradcheck_cli.cli.options import (
    MODEL_HELP,
    SectionedCommand,
    choice,
    format_option,
    measure_options,
    prepare,
)
from gradcheck_cli.cli.process import (
    launched,
    reader_may_leave,
    report_stream,
    running_user_code,
)
from gradcheck_cli.errors import UsageError
from gradcheck_cli.findings import exit_code
from gradcheck_cli.remedies import APPLY_ORDER
from gradcheck_cli.report import FIX_FORMATS, OutputFormat


@click.command("fix", cls=SectionedCommand, epilog=MODEL_HELP)
@click.argument("model_spec", metavar="MODEL")
@measure_options
@click.option(
    "--remedy",
    "remedies",
    multiple=True,
    type=click.Choice(list(APPLY_ORDER), case_sensitive=False),
    help="A remedy to try (repeatable).  [default: those the findings suggest]",
)
@click.option(
    "--output",
    "output_dir",
    type=click.Path(file_okay=False),
    help="Write model.pt, state_dict.pt, plan.yaml and report.yaml to this new folder.",
)
@click.option(
    "--activation",
    type=choice(Activation),
    default="relu",
    show_default=True,
    help="What relu-swap puts in place of saturating activations.",
)
@click.option(
    "--init",
    "init_scheme",
    type=choice(InitScheme),
    default="auto",
    show_default=True,
    help="How gain-init draws weights: orthogonal for linear/tanh stacks (auto), normal, orthogonal.",
)
@click.option(
    "--branch-init",
    type=choice(BranchInit),
    default="scale",
    show_default=True,
    help="What residual-scale does to each residual branch's last layer: 1/sqrt(branches), or zero.",
)
@click.option(
    "--budget",
    type=click.IntRange(0, 64),
    default=8,
    show_default=True,
    help="Most combinations of remedies to try after each alone.",
)
@click.option(
    "--probe-steps",
    type=click.IntRange(0, 10_000),
    default=0,
    show_default=True,
    help="Train original and fixed copies this many Adam steps on the same batches and show the losses.",
)
@click.option(
    "--force-reinit",
    is_flag=True,
    help="Allow re-initialisation even when --weights loaded a trained checkpoint.",
)
@click.option(
    "--reset-biases",
    is_flag=True,
    help="Re-initialisation zeroes biases set deliberately too (constant or beyond the default "
    "init's range, e.g. a gate bias of -2); by default they are kept and listed.",
)
@format_option(f.value for f in FIX_FORMATS)
def fix_command(
    model_spec: str,
    remedies: tuple[str, ...],
    output_dir: str | None,
    activation: str,
    init_scheme: str,
    branch_init: str,
    budget: int,
    probe_steps: int,
    force_reinit: bool,
    reset_biases: bool,
    output_format: str,
    quiet: bool,
    debug: bool,
    **flags: Any,
) -> None:
    """Apply the remedies MODEL's findings call for to a copy, prove by measuring again whether
    each helped, and keep the best; the user's files are never modified.

    Exit code as diagnose, judged on the fixed model when --output saves it, else on MODEL.
    """
    with user_errors(debug):
        if launched() or flags.get("shard") not in (None, "none"):
            raise UsageError(
                "gradcheck fix runs in one process, not under torchrun or with --shard: it "
                "diagnoses copies of the model; run `gradcheck fix MODEL` alone, then check the "
                "saved model with `torchrun ... -m gradcheck_cli diagnose fixed/model.pt`"
            )
        # Imported here: torch takes seconds to import, and `fix --help` needs none of it.
        from gradcheck_cli.api import fix
        from gradcheck_cli.fix_result import check_output, check_picklable, save_fix
        from gradcheck_cli.remedies.base import FixOptions
        from gradcheck_cli.report import FIX_RENDERERS

        output = Path(output_dir) if output_dir else None
        if output is not None:
            check_output(output)
        # The model's own prints must not land in the report, nor may it end the process.
        with running_user_code(flags.pop("timeout", None)):
            job = prepare(model_spec, flags)
            if output is not None:
                check_picklable(job.loaded.module)  # before the trials, not after them
            options = FixOptions(
                activation=Activation(activation),
                init=InitScheme(init_scheme),
                branch_init=BranchInit(branch_init),
                force_reinit=force_reinit,
                weights_given=job.weights_given,
                reset_biases=reset_biases,
            )
            with progress(enabled=not quiet and sys.stderr.isatty()) as on_step:
                result = fix(
                    job.loaded.module,
                    job.inputs,
                    job.loaded.loss_fn,
                    remedies=list(remedies) or None,
                    fix_options=options,
                    budget=budget,
                    probe_steps=probe_steps,
                    source=model_spec,
                    settings=job.settings,
                    model_name=job.loaded.name,
                    on_step=on_step,
                )
        if output is not None:
            save_fix(result, output, model_spec)
            if not quiet:
                click.echo(
                    f"gradcheck: wrote {output}/ (model.pt, state_dict.pt, plan.yaml, report.yaml)",
                    err=True,
                )
        with reader_may_leave():
            FIX_RENDERERS[OutputFormat(output_format)](
                result, report_stream(), color=use_color(), before_model=job.loaded.module
            )
    judged = result.after if output is not None else result.before
    sys.exit(exit_code(judged, job.settings.fail_on))
