"""Options shared by the commands: loading and measuring a model (diagnose, fix), --format and
--debug (all of them)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import torch

from gradcheck_cli.config import Device, Settings, load_settings, parse_enum
from gradcheck_cli.findings import FailOn
from gradcheck_cli.loading import (
    InputShape,
    LoadedModel,
    LossKind,
    batches_factory,
    check_inferred_inputs,
    data_factory,
    fit_token_range,
    load_data,
    load_model,
    load_weights,
    match_data_dtype,
    shapes_factory,
)
from gradcheck_cli.measure import Amp
from gradcheck_cli.preflight import check_runnable
from gradcheck_cli.seeding import seeded
from gradcheck_cli.training import Optimizer


def choice(kind: type[Any]) -> click.Choice:
    """A click choice listing an enum's values."""
    return click.Choice([m.value for m in kind])


def format_option(choices: Iterable[str]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--format`` among ``choices`` (default ``rich``): what a command prints on stdout."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(list(choices)),
        default="rich",
        show_default=True,
        help="What to print on stdout.",
    )


debug_option = click.option("--debug", is_flag=True, help="Show tracebacks of errors.")


_MEASURE_OPTIONS = [
    click.option("--steps", type=int, help="Backward passes, each on a fresh batch [default: 3]."),
    click.option("--seed", type=int, help="Seed of the batches and of dropout [default: 0]."),
    click.option("--batch-size", type=int, help="Batch size of synthetic inputs [default: 16]."),
    click.option("--device", type=choice(Device), help="Where to run [default: auto]."),
    click.option(
        "--loss", type=choice(LossKind), help="Loss when the file has no loss_fn [default: auto]."
    ),
    click.option(
        "--input-shape",
        "input_shapes",
        multiple=True,
        metavar="SHAPE[:DTYPE[:LOW-HIGH]]",
        help="One positional input without the batch dim, e.g. 3x32x32 or 128:int64:0-50257. Repeat for several inputs.",
    ),
    click.option(
        "--data",
        "data_path",
        type=click.Path(dir_okay=False),
        help="Real batches from a .pt (tensor, (inputs..., targets) or dict), .npy or .npz file; targets, when present, feed the loss.",
    ),
    click.option(
        "--weights",
        type=click.Path(dir_okay=False),
        help="A state dict to load into the model (weights only).",
    ),
    click.option(
        "--trust-pickle",
        is_flag=True,
        help="Allow loading a pickled module (.pt): this runs code from the file.",
    ),
    click.option(
        "--amp",
        type=choice(Amp),
        help="Run the passes under autocast: bf16 or fp16 (fp16 adds the underflow check) [default: none].",
    ),
    click.option(
        "--train-steps",
        type=int,
        help="Train a copy this many optimizer steps, measuring at 0, K/4, K/2, 3K/4 and K; findings are those after training [default: 0].",
    ),
    click.option(
        "--optimizer", type=choice(Optimizer), help="Optimizer for --train-steps [default: adam]."
    ),
    click.option(
        "--lr", type=float, help="Learning rate for --train-steps [default: 1e-3; sgd 1e-2]."
    ),
    click.option(
        "--fail-on", type=choice(FailOn), help="Lowest severity that exits 1 [default: error]."
    ),
    click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        help="Config file (default: gradcheck.yaml or [tool.gradcheck] found from the working directory).",
    ),
    click.option("-q", "--quiet", is_flag=True, help="No progress or status messages on stderr."),
    debug_option,
]


def measure_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the model-loading and measurement options to a command."""
    for option in reversed(_MEASURE_OPTIONS):
        command = option(command)
    return command


@dataclass(frozen=True)
class Job:
    """A loaded model with its inputs and merged settings, ready for the library."""

    loaded: LoadedModel
    inputs: Any
    settings: Settings
    weights_given: bool = False  # --weights loaded a (trained) checkpoint


def prepare(model_spec: str, flags: dict[str, Any], *, plan: str | None = None) -> Job:
    """Settings (defaults < config < flags), the model (with plan and weights) and its inputs.

    ``flags`` are the values of :func:`measure_options` other than ``--quiet`` and ``--debug``:
    the loading options (``--config``, ``--input-shape``, ``--weights``, ``--data``,
    ``--trust-pickle``) and the settings.
    """
    given = dict(flags)
    config_path: str | None = given.pop("config_path", None)
    input_shapes: tuple[str, ...] = given.pop("input_shapes", ())
    weights: str | None = given.pop("weights", None)
    data_path: str | None = given.pop("data_path", None)
    trust_pickle: bool = given.pop("trust_pickle", False)
    settings, _ = load_settings(Path(config_path) if config_path else None, cwd=Path.cwd())
    given = {k: v for k, v in given.items() if v is not None}
    for key, kind in (
        ("device", Device),
        ("loss", LossKind),
        ("fail_on", FailOn),
        ("amp", Amp),
        ("optimizer", Optimizer),
    ):
        if key in given:
            given[key] = parse_enum(kind, given[key], f"--{key.replace('_', '-')}")
    settings = dataclasses.replace(settings, **given)
    shapes = [InputShape.parse(s) for s in input_shapes]
    # Seeded, so a model file that initialises randomly builds the same weights every run:
    # baselines compare like with like.
    with seeded(settings.seed):
        loaded = load_model(model_spec, trust_pickle=trust_pickle)
    if plan is not None:
        from gradcheck_cli.remedies.plan import Plan, apply_plan

        module = apply_plan(loaded.module, Plan.load(plan), inplace=True)
        loaded = dataclasses.replace(loaded, module=module)
    if weights is not None:
        load_weights(loaded.module, weights)
    if data_path is not None:
        data, targets = load_data(data_path)
        data, note = match_data_dtype(data, loaded.module)
        if note is not None:
            _note(note)
        inputs: Any = data_factory(data, targets, source=data_path)
    elif loaded.batches is not None and not shapes:
        inputs = batches_factory(loaded.batches, model_spec)
    elif shapes:
        inputs = shapes_factory(fit_token_range(shapes, loaded.module), torch.device("cpu"))
    else:
        inputs = loaded.example_inputs
        if inputs is None:
            # diagnose() infers the same shape; one trial forward pass first turns a misfit into
            # advice naming the model's real sizes.
            check_inferred_inputs(loaded.module, settings.batch_size)
    # After the inputs: inferring them runs the model once, which gives lazy modules their shapes.
    check_runnable(loaded.module, settings)
    return Job(loaded, inputs, settings, weights_given=weights is not None)


def _note(text: str) -> None:
    """A status line on stderr, unless the command runs with --quiet."""
    context = click.get_current_context(silent=True)
    if context is None or not context.params.get("quiet"):
        click.echo(f"gradcheck: note: {text}", err=True)
