"""The library's entry points: :func:`diagnose` returns a :class:`Report`, :func:`fix` a fix.

This is the only orchestration in gradcheck: the CLI builds settings, calls :func:`diagnose`,
picks a renderer and maps the report to an exit code.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from gradcheck_cli.checks import run_checks
from gradcheck_cli.checks.not_learning import refutable
from gradcheck_cli.choices import ShardMode
from gradcheck_cli.config import (
    AUTO,
    ConfigChoice,
    Device,
    Settings,
    apply_mapping,
    project_settings,
)
from gradcheck_cli.distributed import join
from gradcheck_cli.errors import InputError, ModelRunError, UsageError
from gradcheck_cli.findings import Finding, Report, RunInfo, Severity
from gradcheck_cli.fixing import (
    TRAIN_TIE_STEPS,
    FixResult,
    RemedyOutcome,
    Trial,
    best,
    combinations,
    memory_note,
    tied,
    trains_best,
)
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
from gradcheck_cli.preflight import check_runnable, require_module
from gradcheck_cli.remedies import ALSO_TRY, REGISTRY
from gradcheck_cli.remedies.base import FixOptions, NotApplicable, Proposal, RemedyContext
from gradcheck_cli.remedies.edits import Edit
from gradcheck_cli.remedies.plan import Plan, apply_plan
from gradcheck_cli.remedies.probe import Probe, probe
from gradcheck_cli.remedies.verdict import Verdict, judge, what_got_worse
from gradcheck_cli.training import Optimizer, train, train_step
from gradcheck_cli.version import __version__


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
    make_inputs = _input_factory(model, inputs, device, chosen.batch_size)
    started = time.perf_counter()
    training = None
    with contextlib.ExitStack() as stack:
        original = _device_of(model)
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


def _device_of(model: nn.Module) -> torch.device | None:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return None


def _input_factory(
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
    opts = fix_options or FixOptions()
    unknown = [r for r in remedies or () if r not in REGISTRY]
    if unknown:
        raise UsageError(
            f"unknown remedy '{unknown[0]}'; choose from {', '.join(REGISTRY)} "
            "(lower-lr is advice only)"
        )

    def run(candidate: nn.Module) -> Report:
        return diagnose(
            candidate, inputs, loss_fn, settings=chosen, model_name=model_name, on_step=on_step
        )

    before = run(model)
    if chosen.learn is None:
        # Every trial is judged as the original was: by the learning probe as well, with its
        # steps, when the probe ran by itself on the original (a finding it could refute), so a
        # trial whose diagnosis clears while its copy still does not learn is not a cure; by
        # the diagnosis alone when it did not.
        probe = before.learning
        chosen = replace(chosen, learn=probe.requested if probe is not None else 0)
        if probe is not None and probe.verdict != "learns":
            before = run(model)  # again, its probe's verdict now a finding, as in each trial
    wanted = list(remedies) if remedies else _suggested(before)
    code = _code_changes(before)
    if not wanted:
        serious = sorted(
            {
                f.id
                for f in before.findings
                if f.severity.rank >= Severity.WARNING.rank and f.evidence.get("reason") != "cut"
            }
        )
        said = list(code)
        if serious:
            said.append(f"no automatic remedy for {', '.join(serious)}; see the findings' advice")
        message = (
            "; ".join(said)
            or "nothing needed fixing: no finding at warning or error; the model is unchanged"
        )
        return FixResult(before, None, (), (), model, message)

    context = RemedyContext(_probe(model, inputs, chosen), before, opts)
    warning = memory_note(model, _device_of(model) or torch.device("cpu"))
    notes: tuple[str, ...] = (*code, *((warning,) if warning else ()))
    outcomes: list[RemedyOutcome] = []
    proposals: dict[str, Proposal] = {}
    for remedy_id in wanted:
        proposal = REGISTRY[remedy_id]().propose(model, context)
        if isinstance(proposal, NotApplicable):
            outcomes.append(
                RemedyOutcome(remedy_id, Verdict.NOT_APPLICABLE, reason=proposal.reason)
            )
        else:
            proposals[remedy_id] = proposal

    def trial(combo: tuple[str, ...], edits: tuple[Edit, ...] | None = None) -> Trial:
        if edits is None:
            edits = tuple(e for r in combo for e in proposals[r].edits)
        plan = Plan(edits=edits, remedies=combo, source=source, seed=chosen.seed)
        report = run(apply_plan(model, plan))
        targets = {f.id for f in before.findings for r in combo if r in f.remedies}
        return Trial(combo, plan, report, judge(before, report, targets))

    trials = []
    for remedy_id in wanted:
        if remedy_id in proposals:
            try:
                single = trial((remedy_id,))
            except ModelRunError as exc:
                # The rewrite breaks the model's own code (a module its forward reads an
                # attribute of, now wrapped): not a remedy for this model.
                del proposals[remedy_id]
                outcomes.append(
                    RemedyOutcome(
                        remedy_id,
                        Verdict.NOT_APPLICABLE,
                        reason=f"the rewritten model does not run: {exc}",
                    )
                )
                continue
            trials.append(single)
            proposal = proposals[remedy_id]
            outcomes.append(
                RemedyOutcome(
                    remedy_id,
                    single.verdict,
                    reason=(
                        what_got_worse(before, single.report)
                        if single.verdict is Verdict.WORSE
                        else ""
                    ),
                    notes=proposal.notes,
                    edits=len(proposal.edits),
                )
            )
    if not any(t.score == 0 for t in trials):
        alone = {t.remedies[0]: t.score for t in trials}
        combos = combinations(list(proposals), budget, alone)
        trials += _running(functools.partial(trial, combo) for combo in combos)
        chained = _chained(model, proposals, wanted, context, inputs, chosen, source)
        trials += _running(
            functools.partial(trial, c, e)
            for c, e in list(chained.items())[: max(0, budget - len(combos))]
        )
    winner = best(trials, before)
    order = {r: i for i, r in enumerate(wanted)}
    outcomes.sort(key=lambda o: order[o.remedy])
    if winner is None:
        message = "no remedy improved the diagnosis; the model is returned unchanged"
        return FixResult(before, None, tuple(outcomes), tuple(trials), model, message, notes=notes)
    rivals = tied(trials, winner)
    if len(rivals) > 1:
        runs = [(t, _one_batch_losses(model, t.plan, inputs, loss_fn, chosen)) for t in rivals]
        winner = trains_best(runs)
        notes += (_tie_note(runs, winner, chosen),)
    fixed = apply_plan(model, winner.plan)
    message = (
        f"applied {', '.join(winner.remedies)}: {before.status.value} -> "
        f"{winner.report.status.value}"
    )
    probe = winner.report.learning
    if probe is not None and probe.verdict != "learns":
        message += (
            f"; not a cure: the learning probe finds the fixed copy "
            f"{'diverging' if probe.verdict == 'diverging' else 'still not learning'} "
            f"({probe.summary()})"
        )
        if not any(t.report.learning and t.report.learning.verdict == "learns" for t in trials):
            message += (
                "; no trial learned: if the model file's task can be learned (its targets "
                "depend on its inputs), none of these remedies cures it; if not (random "
                "tokens under a next-token loss), no model learns it: give the probe a "
                "learnable task, or --learn 0"
            )
    losses = _probe_training(model, fixed, inputs, loss_fn, chosen, probe_steps)
    return FixResult(before, winner, tuple(outcomes), tuple(trials), fixed, message, losses, notes)


def _running(trials: Iterable[Callable[[], Trial]]) -> list[Trial]:
    """The trials whose rewritten model runs (each remedy ran alone; together they may not)."""
    done = []
    for run_trial in trials:
        with contextlib.suppress(ModelRunError):
            done.append(run_trial())
    return done


def _chained(
    model: nn.Module,
    proposals: dict[str, Proposal],
    wanted: Sequence[str],
    context: RemedyContext,
    inputs: Inputs | InputFactory | None,
    chosen: Settings,
    source: str,
) -> dict[tuple[str, ...], tuple[Edit, ...]]:
    """Pairs in which the second remedy applies only after the first has changed the model.

    ``kaiming-init`` finds no ReLU to initialise for in a sigmoid net, but it does once
    ``relu-swap`` has put ReLUs there: applicability is judged again on the changed model.
    """
    later = [r for r in wanted if r not in proposals]
    chained: dict[tuple[str, ...], tuple[Edit, ...]] = {}
    for first, proposal in proposals.items() if later else ():
        plan = Plan(edits=proposal.edits, remedies=(first,), source=source, seed=chosen.seed)
        changed = apply_plan(model, plan)
        after = RemedyContext(_probe(changed, inputs, chosen), context.report, context.options)
        for remedy_id in later:
            then = REGISTRY[remedy_id]().propose(changed, after)
            if isinstance(then, Proposal):
                chained[(first, remedy_id)] = proposal.edits + then.edits
    return chained


def _code_changes(report: Report) -> list[str]:
    """One line per cut graph (of parameters, or of a sequence's early steps): no remedy
    rewrites code, so the user is told what to change."""
    said = []
    for f in report.findings:
        if f.evidence.get("reason") != "cut":
            continue
        at = f" ({f.evidence['source']})" if f.evidence.get("source") else ""
        if f.id == "no-gradient":
            said.append(
                f"needs a code change: the gradient stops at {f.evidence['operation']}{at}"
                f" before {', '.join(f.layers[:4])}{' and more' if len(f.layers) > 4 else ''}; "
                "remove the cut, or call requires_grad_(False) on them if they are meant to be "
                "frozen"
            )
        else:
            where = f"at {f.evidence['operation']}{at}" if f.evidence.get("operation") else ""
            said.append(
                f"needs a code change: the gradient through time stops {where or 'in forward'} "
                f"before step {f.evidence['cut_step']} of {f.evidence['steps']}; remove the "
                "cut, or truncate no shorter than the longest dependency of the task"
            )
    return said


def _suggested(report: Report) -> list[str]:
    """Remedy ids named by findings at warning or error, most severe finding first, each
    followed by the general remedies ``ALSO_TRY`` gives for it."""
    wanted: list[str] = []
    for finding in sorted(report.findings, key=lambda f: -f.severity.rank):
        if finding.severity.rank < Severity.WARNING.rank:
            continue
        for named in finding.remedies:
            for remedy_id in (named, *ALSO_TRY.get(named, ())):
                if remedy_id in REGISTRY and remedy_id not in wanted:
                    wanted.append(remedy_id)
    return wanted


def _passes(
    model: nn.Module,
    inputs: Inputs | InputFactory | None,
    loss_fn: LossFn | None,
    settings: Settings,
) -> Passes:
    """Batches and loss for work on ``model`` outside ``diagnose`` (probe, probe training)."""
    device = _device_of(model) or torch.device("cpu")
    make = _input_factory(model, inputs, device)
    return Passes(model, make, loss_fn, settings.loss, settings.seed, settings.batch_size, device)


def _probe(model: nn.Module, inputs: Inputs | InputFactory | None, settings: Settings) -> Probe:
    passes = _passes(model, inputs, None, settings)
    with passes.seeded(0):  # the batch of the diagnosis' first step
        batch = passes.inputs()
    try:
        return probe(model, batch)
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"the probe forward pass raised {type(exc).__name__}: {exc}") from exc


def _one_batch_losses(
    model: nn.Module,
    plan: Plan,
    inputs: Inputs | InputFactory | None,
    loss_fn: LossFn | None,
    settings: Settings,
) -> list[float]:
    """The losses of ``TRAIN_TIE_STEPS`` steps of the run's optimizer (``--optimizer``,
    ``--lr``) on the diagnosis' first batch, over and over, of a copy with ``plan`` applied:
    how well it trains, where the diagnosis calls two trials equal."""
    chosen = settings.optimizer, settings.lr or settings.optimizer.default_lr
    try:
        return _train_losses(
            apply_plan(model, plan), inputs, loss_fn, settings, chosen, TRAIN_TIE_STEPS, batch=0
        )
    except ModelRunError:
        return [math.nan]


def _train_losses(
    model: nn.Module,
    inputs: Inputs | InputFactory | None,
    loss_fn: LossFn | None,
    settings: Settings,
    optimizer: tuple[Optimizer, float],
    steps: int,
    batch: int | None = None,
) -> list[float]:
    """Train ``model`` (a copy the caller owns) ``steps`` steps of ``optimizer`` (kind, lr) on
    the diagnosis' own batch seeds, step ``i`` on batch ``i``, or on batch ``batch`` every step;
    the loss of each step."""
    passes = _passes(model, inputs, loss_fn, settings)
    kind, lr = optimizer
    opt = kind.build([p for p in passes.model.parameters() if p.requires_grad], lr)
    return [
        train_step(passes, step if batch is None else batch, opt, seed_offset=0)
        for step in range(steps)
    ]


def _tie_note(runs: list[tuple[Trial, list[float]]], winner: Trial, settings: Settings) -> str:
    """Which trials the diagnosis could not tell apart, how each trained, and which was kept."""
    each = ", ".join(
        f"{'+'.join(t.remedies)} {losses[0]:.3g} -> {losses[-1]:.3g}" for t, losses in runs
    )
    return (
        f"{len(runs)} trials resolved alike; {TRAIN_TIE_STEPS} {settings.optimizer.value} steps "
        f"on one batch (loss first -> last): {each}; kept {'+'.join(winner.remedies)}"
    )


def _probe_training(
    original: nn.Module,
    fixed: nn.Module,
    inputs: Inputs | InputFactory | None,
    loss_fn: LossFn | None,
    settings: Settings,
    steps: int,
) -> dict[str, list[float]]:
    """Train copies of both models ``steps`` Adam steps (lr 1e-3) on the same batches."""
    if steps <= 0:
        return {}
    curves: dict[str, list[float]] = {}
    for label, source in (("original", original), ("fixed", fixed)):
        # The diagnosis' own batch seeds, so both models see the same batches.
        curves[label] = _train_losses(
            copy_model(source), inputs, loss_fn, settings, (Optimizer.ADAM, 1e-3), steps
        )
    return curves
