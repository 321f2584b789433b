"""The diagnosis pipeline: one run from a model and settings to a :class:`Report`.

:func:`run_diagnosis` is what :func:`gradcheck_cli.api.diagnose` calls once its settings are resolved and
what each of :mod:`gradcheck_cli.fixing`'s trials calls on a rewritten copy: preflight, device,
inputs, measurement (:mod:`gradcheck_cli.measure`), the learning probe
(:mod:`gradcheck_cli.learning`) or ``--train-steps`` (:mod:`gradcheck_cli.training`), the checks
(:mod:`gradcheck_cli.checks`) and the report. :func:`passes_for` gives the batches and loss of a
run for work outside it (the remedies' probe, tie-break training).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from gradcheck_cli.checks import run_checks
from gradcheck_cli.checks.not_learning import refutable
from gradcheck_cli.choices import ShardMode
from gradcheck_cli.config import (
    Device,
    Settings,
)
from gradcheck_cli.distributed import join
from gradcheck_cli.errors import InputError, UsageError
from gradcheck_cli.findings import Finding, Report, RunInfo
from gradcheck_cli.inputs.calling import InputFactory, Inputs, LossFn
from gradcheck_cli.inputs.shapes import (
    DeclaredInputs,
    check_inferred_inputs,
    declared_inputs,
    shapes_factory,
)
from gradcheck_cli.learning import AUTO_BUDGET, AUTO_LEARN, LEARN_BUDGET, run_probe
from gradcheck_cli.loading import copy_model
from gradcheck_cli.measure import Measurement, Passes, StepObserver, heap_frozen, measure
from gradcheck_cli.model_info import describe_model
from gradcheck_cli.preflight import check_runnable
from gradcheck_cli.training import train
from gradcheck_cli.version import __version__


def resolve_device(device: Device) -> torch.device:
    """``auto`` becomes CUDA when available; asking for CUDA without it is a usage error."""
    if device is Device.AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device is Device.CUDA and not torch.cuda.is_available():
        raise UsageError("--device cuda was given but CUDA is not available; use --device cpu")
    return torch.device(device.value)


def run_diagnosis(
    model: nn.Module,
    inputs: Inputs | InputFactory | None,
    loss_fn: LossFn | None,
    chosen: Settings,
    *,
    model_name: str | None = None,
    on_step: StepObserver | None = None,
) -> Report:
    """The diagnosis of ``model`` under ``chosen`` (see :func:`gradcheck_cli.api.diagnose`):
    preflight, device and process group, inputs, the measured passes (or ``--train-steps``),
    the learning probe when it is asked for or a finding it could refute exists, the checks,
    and the report."""
    check_runnable(model, chosen)
    device = resolve_device(chosen.device)
    shard = None
    if chosen.shard is not ShardMode.NONE:
        shard = join(chosen.shard, device)
        shard.check_batch(chosen.batch_size)
        if chosen.train_steps or chosen.learn:  # the automatic probe is skipped instead
            flag = "--train-steps" if chosen.train_steps else "--learn"
            raise UsageError(f"{flag} does not run under --shard yet; train in one process")
        if device.type == "cuda":  # one device per local rank
            device = torch.device("cuda", shard.local_rank)
            torch.cuda.set_device(device)
    if chosen.train_steps and chosen.learn:
        raise UsageError(
            "--learn judges the model as built, --train-steps after training: use one of them"
        )
    auto = chosen.learn is None and not chosen.train_steps and shard is None
    make_inputs = input_factory(model, inputs, device, chosen.batch_size)
    started = time.perf_counter()
    training = None
    with contextlib.ExitStack() as stack:
        original = device_of(model)
        # A meta-built model gets its storage when it is sharded, one shard per rank.
        if original is not None and original != device and original.type != "meta":
            model.to(device)
            # FSDP2 shards the model in place on the device, and an FSDP2 module cannot be
            # moved back (torch 2.11 on an H200: AttributeError in reset_sharded_param).
            if chosen.shard is not ShardMode.FSDP:
                stack.callback(model.to, original)

        stack.enter_context(heap_frozen())

        def measure_at(candidate: nn.Module) -> Measurement:
            return measure(
                candidate,
                make_inputs,
                loss_fn=loss_fn,
                loss=chosen.loss,
                steps=chosen.steps,
                seed=chosen.seed,
                batch_size=chosen.batch_size,
                device=device,
                amp=chosen.amp,
                on_step=on_step or (lambda done, total: None),
                shard=shard,
                time_axis=chosen.time_axis,
            )

        def evaluate(measurement: Measurement) -> list[Finding]:
            return run_checks(measurement.stats, chosen.thresholds, chosen.rules)

        if chosen.train_steps:
            # Training changes weights: it runs on a copy, never on the caller's model.
            passes = Passes(
                model, make_inputs, loss_fn, chosen.loss, chosen.seed, chosen.batch_size, device
            )
            measured, findings, training = train(
                copy_model(model),
                passes,
                steps=chosen.train_steps,
                optimizer=chosen.optimizer,
                lr=chosen.lr or chosen.optimizer.default_lr,
                momentum=chosen.momentum,
                measure_at=measure_at,
                evaluate=evaluate,
            )
        else:
            measured = measure_at(model)
            steps = chosen.learn
            if auto and refutable(evaluate(measured)):
                steps, budget = AUTO_LEARN, AUTO_BUDGET
            else:
                budget = LEARN_BUDGET
            if steps:
                # The probe trains a copy; its verdict joins the statistics the checks read.
                probe = run_probe(
                    copy_model(model),
                    Passes(
                        model,
                        make_inputs,
                        loss_fn,
                        chosen.loss,
                        chosen.seed,
                        chosen.batch_size,
                        device,
                    ),
                    steps=steps,
                    optimizer=chosen.optimizer,
                    lr=chosen.lr or chosen.optimizer.default_lr,
                    momentum=chosen.momentum,
                    budget=budget,
                )
                probe = replace(probe, asked=not auto)
                if not (auto and probe.verdict == "undecided"):  # asked for, or a verdict
                    measured = replace(measured, stats=replace(measured.stats, learning=probe))
            findings = evaluate(measured)
    seconds = time.perf_counter() - started
    return Report(
        model=describe_model(model, model_name),
        run=RunInfo(
            steps=chosen.steps,
            batch_size=chosen.batch_size,
            device=str(device),
            loss=measured.loss,
            seed=chosen.seed,
            seconds=seconds,
            inputs=_describe_inputs(inputs, make_inputs),
            torch=str(torch.__version__),
            amp=chosen.amp.value,
            shard=chosen.shard.value if shard is not None else ShardMode.NONE.value,
            world_size=shard.world if shard is not None else 1,
        ),
        findings=tuple(findings),
        layers=measured.stats.layers,
        losses=measured.stats.losses,
        tool_version=__version__,
        training=training,
        temporal=measured.stats.temporal,
        learning=measured.stats.learning,
    )


def device_of(model: nn.Module) -> torch.device | None:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return None


def input_factory(
    model: nn.Module,
    inputs: Inputs | InputFactory | None,
    device: torch.device,
    batch_size: int = 16,
) -> InputFactory:
    if inputs is None:
        declared = declared_inputs(model, device)
        if declared is not None:
            return declared
        # Checked by one forward pass, with the sizes the layers suggest when it fails (as the
        # command line does), and the Python spelling of the advice.
        try:
            shape = check_inferred_inputs(model, batch_size)
        except InputError as exc:
            raise InputError(
                f"{exc} (from Python: pass inputs=, a batch or a function of the batch size)"
            ) from None
        return shapes_factory([shape], device)
    if callable(inputs) and not isinstance(inputs, (torch.Tensor, nn.Module)):
        return inputs  # type: ignore[no-any-return]
    fixed = inputs
    return lambda batch_size: fixed


def _describe_inputs(inputs: Any, made: InputFactory) -> str:
    """How the report names the inputs; ``made`` is the factory the run used."""
    if inputs is None and isinstance(made, DeclaredInputs):
        return made.description
    if inputs is None:
        return "inferred " + str(getattr(made, "description", "from the first layer"))
    if callable(inputs) and not isinstance(inputs, torch.Tensor):
        return getattr(inputs, "description", None) or "example_inputs(batch_size)"
    return "fixed batch"


def passes_for(
    model: nn.Module,
    inputs: Inputs | InputFactory | None,
    loss_fn: LossFn | None,
    settings: Settings,
) -> Passes:
    """Batches and loss for work on ``model`` outside ``diagnose`` (probe, probe training)."""
    device = device_of(model) or torch.device("cpu")
    make = input_factory(model, inputs, device)
    return Passes(model, make, loss_fn, settings.loss, settings.seed, settings.batch_size, device)
