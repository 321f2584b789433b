"""Training dynamics (``--train-steps K``): measure, take real optimizer steps, measure again.

Many failures appear only after some training (a recurrent net whose gradients explode after a
few updates at a high learning rate, units that die), and some alarms at initialisation go away
after one update (a zero-initialised head blocks the gradient only until its weights move). This
module trains a copy of the model for K steps on fresh seeded batches with the same loss as the
measurement, measures at checkpoints 0, K/4, K/2, 3K/4 and K, and keeps per-layer trends. The
findings of the report are those of the last checkpoint, plus findings that arose at an
intermediate checkpoint and were gone again by the end (:func:`transient`); findings that were
present at step 0 and are gone by then are kept as notes, so the report says why the model looked
sick at init. Later checkpoints carry each layer's gradient norm at step 0, for the
growth-in-training rule of ``exploding``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import torch
from torch import nn

from gradcheck_cli.choices import Optimizer
from gradcheck_cli.findings import Checkpoint, Finding, Severity, Training
from gradcheck_cli.measure import Measurement, Passes
from gradcheck_cli.stats import ModelStats, value

# Training batches are drawn from seeds apart from the measurement's.
TRAIN_SEED_OFFSET = 50_000


def checkpoints(steps: int) -> list[int]:
    """0, K/4, K/2, 3K/4 and K (rounded up, without repeats)."""
    return sorted({0, *(math.ceil(steps * q / 4) for q in (1, 2, 3)), steps})


def train(
    model: nn.Module,
    passes: Passes,
    *,
    steps: int,
    optimizer: Optimizer,
    lr: float,
    measure_at: Callable[[nn.Module], Measurement],
    momentum: float = 0.0,
    evaluate: Callable[[Measurement], list[Finding]],
) -> tuple[Measurement, list[Finding], Training]:
    """Train ``model`` (already a copy; ``passes`` supplies batches and loss) and measure it.

    Returns the last measurement, its findings, and the training record. A non-finite loss stops
    the training; the model is then measured as it is.
    """
    passes = replace(passes, model=model)
    opt = optimizer.build([p for p in model.parameters() if p.requires_grad], lr, momentum)
    losses: list[float] = []
    marks: list[Checkpoint] = []
    measured: list[tuple[int, Measurement]] = []
    found: list[tuple[int, list[Finding]]] = []
    start_norms: tuple[tuple[str, float], ...] | None = None  # set by the step-0 measurement
    findings: list[Finding] = []
    stopped = ""
    taken = 0
    for mark in checkpoints(steps):
        while taken < mark and not stopped:
            loss = train_step(passes, taken, opt)
            losses.append(loss)
            taken += 1
            if not math.isfinite(loss):
                stopped = f"the training loss became {loss} at step {taken}"
        measurement = measure_at(model)
        if start_norms is None:
            start_norms = _norms(measurement.stats)
        else:
            measurement = replace(
                measurement, stats=replace(measurement.stats, start_grad_norms=start_norms)
            )
        findings = evaluate(measurement)
        found.append((taken, findings))
        finite = [v for v in measurement.stats.losses if math.isfinite(v)]
        marks.append(
            Checkpoint(
                taken,
                sum(finite) / len(finite) if finite else math.nan,
                tuple((f.id, f.severity) for f in findings),
            )
        )
        measured.append((taken, measurement))
        if stopped:
            break
    final = measured[-1][1]
    names = [layer.name for layer in final.stats.layers]
    trends = {
        name: tuple(_grad_rms(m, name) for _, m in measured)
        for name in names
        if any(_grad_rms(m, name) is not None for _, m in measured)
    }
    notes = _notes(found[0][1], marks)
    record = Training(
        optimizer, lr, steps, taken, tuple(losses), tuple(marks), trends, notes, stopped
    )
    return final, findings + transient(found), record


def transient(found: Sequence[tuple[int, Sequence[Finding]]]) -> list[Finding]:
    """Findings that arose during training and were gone again by the last checkpoint.

    A net whose gradients explode at step 5 and that has saturated by step 20 went through a
    failure the last checkpoint no longer shows. Each such finding (at warning or above, not
    already there at step 0, and not at the end at its severity or above) is kept, at its worst,
    with the step it was seen at. Findings of step 0 that training cured are notes instead.
    """
    if len(found) < 3:
        return []
    (_, first), middle, (last_step, last) = found[0], found[1:-1], found[-1]

    def covered(finding: Finding, among: Sequence[Finding]) -> bool:
        return any(f.id == finding.id and f.severity.rank >= finding.severity.rank for f in among)

    kept: dict[str, Finding] = {}
    for step, findings in middle:
        for f in findings:
            if f.severity.rank < Severity.WARNING.rank or covered(f, first) or covered(f, last):
                continue
            if f.id in kept and kept[f.id].severity.rank >= f.severity.rank:
                continue
            kept[f.id] = replace(
                f,
                message=f"at step {step} of {last_step}, gone by the end: {f.message}",
                evidence={**f.evidence, "step": step},
            )
    return list(kept.values())


def train_step(
    passes: Passes, step: int, opt: torch.optim.Optimizer, *, seed_offset: int = TRAIN_SEED_OFFSET
) -> float:
    """One optimizer step on ``passes.model`` with the run's seeded batch and loss; the loss."""
    passes.model.train()
    with passes.seeded(seed_offset + step):
        inputs = passes.inputs()
        value_, _ = passes.loss_of(passes.forward(inputs), inputs)
        opt.zero_grad(set_to_none=True)
        value_.float().backward()
        opt.step()
    return float(value_.detach())


def _norms(stats: ModelStats) -> tuple[tuple[str, float], ...]:
    """Each layer's measured gradient norm, for the growth-in-training rule of ``exploding``."""
    return tuple(
        (layer.name, norm) for layer in stats.layers if (norm := value(layer.grad_norm)) is not None
    )


def _grad_rms(measurement: Measurement, name: str) -> float | None:
    for layer in measurement.stats.layers:
        if layer.name == name:
            return value(layer.grad_rms)
    return None


def _notes(first: list[Finding], marks: list[Checkpoint]) -> tuple[str, ...]:
    """Findings of step 0 that training made go away: what they said, and when they went."""
    notes = []
    for f in first:
        gone = next((m.step for m in marks if (f.id, f.severity) not in m.findings), None)
        if gone is not None and (f.id, f.severity) not in marks[-1].findings:
            notes.append(
                f"at step 0: {f.id} ({f.severity.value}): {f.message}; gone after {gone} "
                "optimizer step(s)"
            )
    return tuple(notes)
