"""The measurement loop: a few seeded forward/backward passes under :func:`hooks.capture`.

Each step draws a fresh batch under its own seed (inside :func:`torch.random.fork_rng`, so the
caller's random state is untouched), runs forward, loss and backward, and reads the step's totals
back in one transfer. A step whose totals contain NaN/Inf is run again, with the same seed, with
exact non-finite counting switched on: the common case pays nothing for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gradcheck_cli.errors import InputError, ModelRunError
from gradcheck_cli.hooks import Recorder, capture
from gradcheck_cli.loading import (
    InputFactory,
    LossFn,
    LossKind,
    call_model,
    resolve_loss,
    to_device,
)
from gradcheck_cli.stats import ModelStats, StepRecord, aggregate

StepObserver = Callable[[int, int], None]


def _ignore(done: int, total: int) -> None:
    """The default progress observer: does nothing."""


@dataclass(frozen=True)
class Measurement:
    """Aggregated statistics plus the facts the report needs about how they were obtained."""

    stats: ModelStats
    loss: str


def measure(
    model: nn.Module,
    make_inputs: InputFactory,
    *,
    loss_fn: LossFn | None,
    loss: LossKind,
    steps: int,
    seed: int,
    batch_size: int,
    device: torch.device,
    on_step: StepObserver = _ignore,
) -> Measurement:
    """Run ``steps`` measured passes and aggregate them."""
    records: list[StepRecord] = []
    used_loss = "loss_fn" if loss_fn is not None else loss.value
    devices = [device.index or 0] if device.type == "cuda" else []
    with capture(model) as recorder:
        for step in range(steps):
            record, used_loss = _step(
                recorder, model, make_inputs, loss_fn, loss, seed, step, batch_size, device, devices
            )
            if record.anomalous:
                with recorder.counting():
                    record, used_loss = _step(
                        recorder,
                        model,
                        make_inputs,
                        loss_fn,
                        loss,
                        seed,
                        step,
                        batch_size,
                        device,
                        devices,
                    )
            records.append(record)
            on_step(step + 1, steps)
    return Measurement(stats=aggregate(recorder.infos, records), loss=str(used_loss))


def _step(
    recorder: Recorder,
    model: nn.Module,
    make_inputs: InputFactory,
    loss_fn: LossFn | None,
    loss: LossKind,
    seed: int,
    step: int,
    batch_size: int,
    device: torch.device,
    devices: list[int],
) -> tuple[StepRecord, str]:
    with torch.random.fork_rng(devices=devices):
        # One seed per step: a fresh batch each step, the same batch when a step is rerun.
        torch.manual_seed(seed * 100_003 + step)
        recorder.begin_step()
        try:
            inputs = to_device(make_inputs(batch_size), device)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(
                f"example_inputs({batch_size}) raised {type(exc).__name__}: {exc}"
            ) from exc
        try:
            output = call_model(model, inputs)
        except Exception as exc:
            raise ModelRunError(
                f"the model's forward pass raised {type(exc).__name__}: {_first_line(exc)}; "
                f"the inputs were {_describe(inputs)}: pass --input-shape or define "
                "example_inputs(batch_size)"
            ) from exc
        used: str
        if loss_fn is not None:
            try:
                value = loss_fn(output, inputs)
            except Exception as exc:
                raise ModelRunError(
                    f"loss_fn raised {type(exc).__name__}: {_first_line(exc)}"
                ) from exc
            used = "loss_fn"
        else:
            kind, value = resolve_loss(loss, output)
            used = kind.value if isinstance(kind, LossKind) else kind
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise ModelRunError(
                f"the loss must be a scalar tensor, got {_describe(value)}; make loss_fn "
                "return e.g. a mean"
            )
        if not value.requires_grad:
            raise ModelRunError(
                "the loss does not depend on any trainable parameter (it has no grad_fn); "
                "check that the model has trainable parameters and that forward does not "
                "run under torch.no_grad()"
            )
        try:
            value.reshape(()).backward()
        except Exception as exc:
            raise ModelRunError(
                f"the backward pass raised {type(exc).__name__}: {_first_line(exc)}"
            ) from exc
        return recorder.end_step(value.detach().reshape(())), used


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_describe(v) for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_describe(v)}" for k, v in value.items()) + "}"
    return type(value).__name__
