"""The library's entry points: :func:`diagnose` returns a :class:`Report`, :func:`fix` a
:class:`FixResult`.

A facade: each resolves its settings (the project's config file, then keyword options) and hands
the run to :mod:`gradcheck_cli.pipeline` (a diagnosis) or :mod:`gradcheck_cli.fixing` (the fix
search). The CLI builds the same settings and calls these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from gradcheck_cli.choices import ShardMode
from gradcheck_cli.config import (
    AUTO,
    ConfigChoice,
    Settings,
    apply_mapping,
    project_settings,
)
from gradcheck_cli.errors import UsageError
from gradcheck_cli.findings import Report
from gradcheck_cli.fix_result import FixResult
from gradcheck_cli.fixing import search
from gradcheck_cli.inputs.calling import InputFactory, Inputs, LossFn
from gradcheck_cli.measure import StepObserver
from gradcheck_cli.pipeline import run_diagnosis
from gradcheck_cli.preflight import require_module
from gradcheck_cli.remedies import REGISTRY
from gradcheck_cli.remedies.base import FixOptions


def diagnose(
    model: nn.Module,
    inputs: Inputs | InputFactory | None = None,
    loss_fn: LossFn | None = None,
    *,
    settings: Settings | None = None,
    config: ConfigChoice = AUTO,
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
        config: without ``settings``, the project's config file the options are applied on top
            of, as ``gradcheck diagnose`` reads it: found from the working directory upward
            (``gradcheck.yaml`` or ``[tool.gradcheck]``) by default, a path, or None for none.
        model_name: how the report names the model (default: its class name).
        on_step: progress observer called as ``on_step(done, total)``.
        **options: ``steps``, ``seed``, ``batch_size``, ``device``, ``loss``, ``amp``, ``fail_on``,
            ``thresholds`` (``{finding_id: {option: value}}``), ``checks``
            (``{finding_id: {"severity": "off"|"info"|..., "ignore_layers": [glob, ...]}}``)
            and ``ignore_layers``, as in the config file.

    Returns:
        The :class:`Report`; ``report.status``, ``.findings``, ``.layers``, ``.to_yaml()``.
    """
    require_module(model, "diagnose()")
    chosen = apply_mapping(project_settings(settings, config), options, source="diagnose()")
    return run_diagnosis(model, inputs, loss_fn, chosen, model_name=model_name, on_step=on_step)


def fix(
    model: nn.Module,
    inputs: Inputs | InputFactory | None = None,
    loss_fn: LossFn | None = None,
    *,
    remedies: Sequence[str] | None = None,
    fix_options: FixOptions | None = None,
    budget: int = 8,
    probe_steps: int = 0,
    source: str = "",
    settings: Settings | None = None,
    config: ConfigChoice = AUTO,
    model_name: str | None = None,
    on_step: StepObserver | None = None,
    **options: Any,
) -> FixResult:
    """Diagnose ``model``, try remedies on copies, keep what measurably helps.

    Every remedy that applies is tried alone (its verdict), then compatible combinations up to
    ``budget`` trials when no single remedy clears every finding. Each trial is diagnosed with the
    same settings and seeds as the original. The best trial (lowest score, then fewest remedies)
    is returned, unless nothing beats the original, which is then returned unchanged. The
    original model is never modified.

    Args:
        remedies: remedy ids to try; None tries those the findings suggest.
        fix_options: ``--activation``, ``--force-reinit`` and whether ``--weights`` was given.
        budget: the most combination trials after the single ones.
        probe_steps: train the original and the fixed copy this many Adam steps on the same
            batches and record both loss curves.
        source: the model spec, recorded in the plan.
        config: as for :func:`diagnose`.
    """
    require_module(model, "fix()")
    chosen = apply_mapping(project_settings(settings, config), options, source="fix()")
    if chosen.shard is not ShardMode.NONE:
        raise UsageError("fix() runs in one process: it diagnoses copies of the model; drop shard=")
    unknown = [r for r in remedies or () if r not in REGISTRY]
    if unknown:
        raise UsageError(
            f"unknown remedy '{unknown[0]}'; choose from {', '.join(REGISTRY)} "
            "(lower-lr is advice only)"
        )
    return search(
        model,
        inputs,
        loss_fn,
        chosen,
        remedies=remedies,
        fix_options=fix_options,
        budget=budget,
        probe_steps=probe_steps,
        source=source,
        model_name=model_name,
        on_step=on_step,
    )
