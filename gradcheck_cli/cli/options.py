"""Options shared by the commands: loading and measuring a model (diagnose, fix), --format and
--debug (all of them)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gradcheck_cli.choices import Amp, Device, LossKind, Optimizer, ShardMode
from gradcheck_cli.cli.process import launched
from gradcheck_cli.config import Settings, load_settings, parse_enum
from gradcheck_cli.errors import UsageError
from gradcheck_cli.findings import FailOn

if TYPE_CHECKING:
    from gradcheck_cli.loading import LoadedModel


# The sections of `diagnose --help` and `fix --help`, in order, and which option goes where (by
# its parameter name); an option not listed goes under "Other".
SECTIONS: tuple[tuple[str, frozenset[str]], ...] = (
    (
        "Model and inputs",
        frozenset(
            {
                "input_shapes",
                "data_path",
                "weights",
                "trust_pickle",
                "plan_path",
                "config_path",
                "on_meta",
            }
        ),
    ),
    (
        "Measurement",
        frozenset({"steps", "seed", "batch_size", "device", "loss", "amp", "shard", "time_axis"}),
    ),
    (
        "Training (--train-steps, --learn)",
        frozenset({"train_steps", "optimizer", "lr", "momentum", "learn"}),
    ),
    (
        "Remedies (fix)",
        frozenset(
            {
                "remedies",
                "output_dir",
                "activation",
                "init_scheme",
                "branch_init",
                "budget",
                "probe_steps",
                "force_reinit",
                "reset_biases",
            }
        ),
    ),
    (
        "Output",
        frozenset(
            {
                "output_format",
                "color",
                "report_paths",
                "junit_path",
                "plot_path",
                "all_layers",
                "quiet",
            }
        ),
    ),
    ("CI and baselines", frozenset({"fail_on", "baseline_path", "regression_factor"})),
)


MODEL_HELP = (
    "MODEL is path/to/file.py (defining build_model(), or exactly one nn.Module instance or "
    "class; optionally example_inputs(batch_size) and loss_fn(output, inputs)), "
    "file.py:NAME or file.py:Class(k=v, ...) with literal arguments, package.module:NAME, "
    "hf:ModelClass, torchvision:name, timm:name, or a saved .pt (with --trust-pickle). "
    "Inputs a file does not define are inferred from the first layer."
)


class SectionedCommand(click.Command):
    """A command whose ``--help`` lists its options in :data:`SECTIONS` (inputs, measurement,
    training, remedies, output, CI), not as one flat list."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        grouped: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
            if record is None:
                continue
            title = next((t for t, names in SECTIONS if param.name in names), "Other")
            grouped.setdefault(title, []).append(record)
        for title in [t for t, _ in SECTIONS] + ["Other"]:
            if title in grouped:
                with formatter.section(title):
                    formatter.write_dl(grouped[title])


def choice(kind: type[Any]) -> click.Choice:
    """A click choice listing an enum's values, case-insensitive (`--loss MSE`)."""
    return click.Choice([m.value for m in kind], case_sensitive=False)


def format_option(choices: Iterable[str]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--format`` among ``choices`` (default ``rich``): what a command prints on stdout; and
    ``--color``, whether the terminal format is coloured."""
    fmt = click.option(
        "--format",
        "output_format",
        type=click.Choice(list(choices), case_sensitive=False),
        default="rich",
        show_default=True,
        help="What to print on stdout.",
    )

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        return fmt(color_option(command))

    return decorate


COLOR_KEY = "gradcheck.color"


def _remember_color(ctx: click.Context, param: click.Parameter, value: str) -> None:
    ctx.meta[COLOR_KEY] = value


color_option = click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"], case_sensitive=False),
    default="auto",
    show_default=True,
    expose_value=False,
    callback=_remember_color,
    help="Colour the terminal report: auto is on a terminal without NO_COLOR set (or with "
    "FORCE_COLOR set).",
)


debug_option = click.option("--debug", is_flag=True, help="Show tracebacks of errors.")


_MEASURE_OPTIONS = [
    click.option("--steps", type=int, help="Backward passes, each on a fresh batch.  [default: 3]"),
    click.option("--seed", type=int, help="Seed of the batches and of dropout.  [default: 0]"),
    click.option("--batch-size", type=int, help="Batch size of synthetic inputs.  [default: 16]"),
    click.option("--device", type=choice(Device), help="Where to run.  [default: auto]"),
    click.option(
        "--loss",
        type=choice(LossKind),
        help="Loss when the file has no loss_fn.  [default: auto]",
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
        "--shard",
        type=choice(ShardMode),
        help="Under torchrun: split the global --batch-size over the ranks, the model under DDP "
        "or sharded with FSDP2, and merge their measurements into one report, printed and "
        "written by rank 0 (launched with WORLD_SIZE > 1, ddp is the default).  [default: none]",
    ),
    click.option(
        "--on-meta",
        is_flag=True,
        help="With --shard fsdp: build the model on the meta device, shard it, then initialise "
        "each rank's shards with each layer's reset_parameters() and the model's "
        "init_weights() if it has one; no rank holds the whole model. Initialisation done in "
        "build_model or __init__ is not applied.",
    ),
    click.option(
        "--time-axis",
        type=int,
        help="Which axis of the model's input is time, for the model-level temporal profile (0 is "
        "the first, usually the batch). Token inputs through an nn.Embedding are profiled at "
        "axis 1 without it; float sequences only with it or the model file's time_axis.",
    ),
    click.option(
        "--amp",
        type=choice(Amp),
        help="Run the passes under autocast: bf16 or fp16 (fp16 adds the underflow check).  [default: none]",
    ),
    click.option(
        "--train-steps",
        type=int,
        help="Train a copy this many optimizer steps, measuring at 0, K/4, K/2, 3K/4 and K; findings are those after training.  [default: 0]",
    ),
    click.option(
        "--optimizer",
        type=choice(Optimizer),
        help="Optimizer for --train-steps.  [default: adam]",
    ),
    click.option(
        "--lr",
        type=float,
        help="Learning rate for --train-steps and --learn.  [default: 1e-3; sgd 1e-2]",
    ),
    click.option(
        "--momentum",
        type=float,
        help="SGD's momentum for --train-steps and --learn (--optimizer sgd only).  [default: 0]",
    ),
    click.option(
        "--learn",
        type=int,
        metavar="STEPS",
        help="Train a copy up to STEPS steps (60 s at most) on fresh batches of the model's "
        "own task (its loss_fn or --data targets) and judge whether it learns: held-out loss "
        "against an input-blind floor. A model that learns has its gradient-statistic "
        "findings downgraded; one that does not gets not-learning. 0: never.  [default: run "
        "by itself, 300 steps, 30 s at most, only to test a finding it could refute]",
    ),
    click.option(
        "--fail-on", type=choice(FailOn), help="Lowest severity that exits 1.  [default: error]"
    ),
    click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        help="Config file (default: gradcheck.yaml or [tool.gradcheck] found from the working directory).",
    ),
    click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True, max=1e7),
        metavar="SECONDS",
        help="Stop the whole run after SECONDS (a forward pass that never returns): exit 2, the "
        "model left as it was found.  [default: no limit]",
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
    # Imported here, not at the top: torch takes seconds to import, and `--help` needs none of it.
    import torch

    from gradcheck_cli.inputs.batches import (
        batches_factory,
        data_factory,
        load_data,
        match_data_dtype,
    )
    from gradcheck_cli.inputs.shapes import (
        InputShape,
        check_inferred_inputs,
        declared_inputs,
        fit_token_range,
        shapes_factory,
    )
    from gradcheck_cli.loading import load_model, load_weights
    from gradcheck_cli.preflight import check_runnable
    from gradcheck_cli.seeding import seeded

    given = dict(flags)
    config_path: str | None = given.pop("config_path", None)
    input_shapes: tuple[str, ...] = given.pop("input_shapes", ())
    weights: str | None = given.pop("weights", None)
    data_path: str | None = given.pop("data_path", None)
    trust_pickle: bool = given.pop("trust_pickle", False)
    meta: bool = given.pop("on_meta", False)
    settings, _ = load_settings(Path(config_path) if config_path else None, cwd=Path.cwd())
    given = {k: v for k, v in given.items() if v is not None}
    for key, kind in (
        ("device", Device),
        ("loss", LossKind),
        ("fail_on", FailOn),
        ("amp", Amp),
        ("optimizer", Optimizer),
        ("shard", ShardMode),
    ):
        if key in given:
            given[key] = parse_enum(kind, given[key], f"--{key.replace('_', '-')}")
    settings = dataclasses.replace(settings, **given)
    if launched() and settings.shard is ShardMode.NONE:
        # Under torchrun every rank would otherwise diagnose its own copy and print its own report.
        settings = dataclasses.replace(settings, shard=ShardMode.DDP)
        _note("launched by torchrun: --shard ddp (the report merges every rank's slice)")
    shapes = [InputShape.parse(s) for s in input_shapes]
    # Seeded, so a model file that initialises randomly builds the same weights every run:
    # baselines compare like with like.
    if meta and not (launched() and settings.shard is ShardMode.FSDP):
        raise UsageError(
            "--on-meta builds a model sharded by FSDP2: run it under torchrun with --shard fsdp"
        )
    if meta and (plan is not None or weights is not None):
        raise UsageError("--on-meta builds fresh weights: drop --plan and --weights with it")
    with seeded(settings.seed):
        loaded = load_model(model_spec, trust_pickle=trust_pickle, on_meta=meta)
    if settings.time_axis is None and loaded.time_axis is not None:
        settings = dataclasses.replace(settings, time_axis=loaded.time_axis)
    if loaded.built_whole is not None:
        _note(f"built the whole model on every rank: {loaded.built_whole}")
    elif meta:
        _note("built on the meta device: each rank initialises only its own shards")
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
        inputs = shapes_factory(
            fit_token_range(shapes, loaded.module), torch.device("cpu"), given=True
        )
    else:
        inputs = loaded.example_inputs
        if inputs is None and declared_inputs(loaded.module) is None:
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
