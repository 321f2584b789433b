"""The library's entry point: :func:`diagnose` measures a model and returns a :class:`Report`.

This is the only orchestration in gradcheck: the CLI builds settings, calls :func:`diagnose`,
picks a renderer and maps the report to an exit code.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import torch
from torch import nn

from gradcheck_cli import __version__
from gradcheck_cli.checks import run_checks
from gradcheck_cli.config import Device, Settings, apply_mapping
from gradcheck_cli.errors import UsageError
from gradcheck_cli.findings import ModelInfo, Report, RunInfo
from gradcheck_cli.loading import (
    InputFactory,
    Inputs,
    LossFn,
    infer_input_shape,
    shapes_factory,
)
from gradcheck_cli.measure import StepObserver, measure


def resolve_device(device: Device) -> torch.device:
    """``auto`` becomes CUDA when available; asking for CUDA without it is a usage error."""
    if device is Device.AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device is Device.CUDA and not torch.cuda.is_available():
        raise UsageError("--device cuda was given but CUDA is not available; use --device cpu")
    return torch.device(device.value)


def diagnose(
    model: nn.Module,
    inputs: Inputs | InputFactory | None = None,
    loss_fn: LossFn | None = None,
    *,
    settings: Settings | None = None,
    model_name: str | None = None,
    on_step: StepObserver | None = None,
    **options: Any,
) -> Report:
    """Run a few measured backward passes on ``model`` and return the diagnosis.

    Args:
        model: the module to diagnose. It is left as it was found: mode, ``requires_grad``,
            existing ``.grad``, buffers, and device.
        inputs: a batch (tensor, tuple of positional inputs or dict of keyword inputs), or a
            callable ``inputs(batch_size)`` that returns a fresh batch (called once per step,
            under the step's seed). None infers a random batch from the first layer.
        loss_fn: ``loss_fn(output, inputs) -> scalar``; None uses ``loss=`` (default ``auto``).
        settings: a full :class:`Settings`; keyword ``options`` are applied on top of it.
        model_name: how the report names the model (default: its class name).
        on_step: progress observer called as ``on_step(done, total)``.
        **options: ``steps``, ``seed``, ``batch_size``, ``device``, ``loss``, ``fail_on``,
            ``thresholds`` (``{finding_id: {option: value}}``), as the CLI flags.

    Returns:
        The :class:`Report`; ``report.status``, ``.findings``, ``.layers``, ``.to_yaml()``.
    """
    chosen = apply_mapping(settings or Settings(), options, source="diagnose()")
    device = resolve_device(chosen.device)
    make_inputs = _input_factory(model, inputs, device)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        original = _device_of(model)
        if original is not None and original != device:
            model.to(device)
            stack.callback(model.to, original)
        measured = measure(
            model,
            make_inputs,
            loss_fn=loss_fn,
            loss=chosen.loss,
            steps=chosen.steps,
            seed=chosen.seed,
            batch_size=chosen.batch_size,
            device=device,
            on_step=on_step or (lambda done, total: None),
        )
    seconds = time.perf_counter() - started
    findings = run_checks(measured.stats, chosen.thresholds)
    params = list(model.parameters())
    return Report(
        model=ModelInfo(
            name=model_name or type(model).__name__,
            type=type(model).__name__,
            parameters=sum(p.numel() for p in params),
            trainable=sum(p.numel() for p in params if p.requires_grad),
        ),
        run=RunInfo(
            steps=chosen.steps,
            batch_size=chosen.batch_size,
            device=str(device),
            loss=measured.loss,
            seed=chosen.seed,
            seconds=seconds,
            inputs=_describe_inputs(inputs, model),
            torch=str(torch.__version__),
        ),
        findings=tuple(findings),
        layers=measured.stats.layers,
        losses=measured.stats.losses,
        tool_version=__version__,
    )


def _device_of(model: nn.Module) -> torch.device | None:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return None


def _input_factory(
    model: nn.Module, inputs: Inputs | InputFactory | None, device: torch.device
) -> InputFactory:
    if inputs is None:
        return shapes_factory([infer_input_shape(model)], device)
    if callable(inputs) and not isinstance(inputs, (torch.Tensor, nn.Module)):
        return inputs  # type: ignore[no-any-return]
    fixed = inputs
    return lambda batch_size: fixed


def _describe_inputs(inputs: Any, model: nn.Module) -> str:
    if inputs is None:
        return "inferred " + infer_input_shape(model).describe()
    if callable(inputs) and not isinstance(inputs, torch.Tensor):
        return getattr(inputs, "description", None) or "example_inputs(batch_size)"
    return "fixed batch"
