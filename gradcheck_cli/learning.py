"""The learning probe (``--learn N``): does the model learn its own task?

Gradients at initialisation say what can and cannot flow; whether the model learns also depends
on the task and the optimizer. The probe trains a copy of the model for up to N steps of the
run's optimizer (``--optimizer``, ``--lr``, ``--momentum``) on fresh seeded batches with the
run's loss, then compares on held-out batches (seeds the training never drew):

* ``start``: the held-out loss before training;
* ``end``: the held-out loss after training;
* ``blind``: the held-out loss of the trained model with its outputs shifted by one row of the
  batch, so each output meets another example's targets. That is what a model reaches that has
  learned the targets' marginal (a bias, a scale) but nothing of its input: the input-blind
  floor. It exists only when the loss reads targets from the inputs (a model file's
  ``loss_fn(output, inputs)``, or ``--data`` targets) and changes when the rows are shifted.

Verdicts: ``diverging`` (a training loss turned non-finite, or the held-out loss rose by more
than its own size), ``learns`` (the held-out loss fell below the input-blind floor by a margin),
``not-learning`` (it did not), ``undecided`` (no floor: a loss that reads no targets, or one that
shifting rows does not change). Fitting one fixed batch was measured and rejected as the test: it
is memorisation, which broken models do well enough through the layers that still train
(``bench/probe_fixed_batch.md``).

This module trains and measures; the ``not-learning`` and ``diverging`` checks judge the result,
and a model that learns has its refutable findings downgraded (:mod:`gradcheck_cli.checks`).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

from gradcheck_cli.choices import Optimizer
from gradcheck_cli.measure import Passes
from gradcheck_cli.stats import LearningProbe, collapse_names

# Training batches and held-out batches are drawn from seeds apart from the measurement's and
# from --train-steps'.
TRAIN_SEED_OFFSET = 70_000
HELDOUT_SEED_OFFSET = 90_000
HELDOUT_BATCHES = 16
SHIFTS = (1, 2, 3)
# "Learns" also needs the mean gap over the held-out batches to exceed this many standard errors:
# a model fitted to inputs that say nothing of the targets lands on either side of the floor.
STANDARD_ERRORS = 3.0
# The probe stops after this many seconds of training if its steps are not done by then; the
# report says how many it took.
LEARN_BUDGET = 60.0
# Without --learn, the probe runs only when the diagnosis has a finding it can refute: this many
# steps, stopping after AUTO_BUDGET seconds (measured: bench/truth/, 300 Adam steps take 2-60 s
# on a 2-core CPU for the small sequence models there).
AUTO_LEARN = 300
AUTO_BUDGET = 30.0
UNDECIDED = (
    "no input-blind floor: the loss draws random targets or reads none from the inputs "
    "(give the model file a loss_fn(output, inputs) that computes its targets from the inputs, "
    "or --data with targets), or shifting outputs between examples does not change it"
)
# "Learns": the held-out loss ends below the input-blind floor by this share of the floor.
MARGIN = 0.25


def run_probe(
    model: nn.Module,
    passes: Passes,
    *,
    steps: int,
    optimizer: Optimizer,
    lr: float,
    momentum: float,
    budget: float,
) -> LearningProbe:
    """Train ``model`` (a copy the caller owns) up to ``steps`` steps or ``budget`` seconds and
    judge whether it learned (see the module's docstring)."""
    passes = replace(passes, model=model, runner=None)
    started = time.perf_counter()
    start, gaps0 = _heldout(passes)
    if gaps0 is None:  # nothing to learn from the inputs: no training is spent on it
        return LearningProbe(
            optimizer.value, lr, momentum, steps, 0, time.perf_counter() - started, start,
            start, None, "undecided", UNDECIDED,
        )  # fmt: skip
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    opt = optimizer.build([p for p in model.parameters() if p.requires_grad], lr, momentum)
    taken, bad = 0, ""
    while taken < steps:
        model.train()
        with passes.seeded(TRAIN_SEED_OFFSET + taken):
            batch = passes.inputs()
            loss, _ = passes.loss_of(passes.forward(batch), batch)
            opt.zero_grad(set_to_none=True)
            loss.float().backward()
            opt.step()
        taken += 1
        value = float(loss.detach())
        if not math.isfinite(value):
            bad = f"the training loss became {value} at step {taken}"
            break
        if time.perf_counter() - started > budget:
            # What it learned in the budget is judged: a probe stopped short can say "learns",
            # never "not-learning" (that takes every step), so on a slower machine the verdict
            # is "undecided", not another one. It is not stopped earlier on a projection of its
            # pace: a model that learns shows it within the budget (a 12-layer Post-LN encoder
            # whose 300 steps take a minute learns in its first 30 s).
            break
    end, gaps = _heldout(passes)
    seconds = time.perf_counter() - started
    still = _still(model, before)
    floor = end + mean_of(gaps) if gaps is not None else None
    if bad or not math.isfinite(end) or end > start + max(abs(start), 1e-8):
        verdict = "diverging"
        reason = bad or f"the held-out loss rose from {start:.3g} to {end:.3g}"
    elif gaps is None or floor is None:
        verdict, reason = "undecided", UNDECIDED
    elif learned(gaps, floor):
        verdict, reason = "learns", "the held-out loss fell below the input-blind floor"
    elif taken < steps:
        # Not learning *yet*: only the full run may say it does not learn, so the verdict does
        # not depend on how fast this machine is.
        verdict = "undecided"
        reason = (
            f"cut short by the time budget ({budget:.0f} s) after {taken} of {steps} steps, "
            "not learning yet; --learn N with fewer steps, or a smaller --batch-size, fits it"
        )
    else:
        verdict = "not-learning"
        reason = "the held-out loss did not fall below what an input-blind model reaches"
    return LearningProbe(
        optimizer.value, lr, momentum, steps, taken, seconds, start, end, floor, verdict, reason,
        still if verdict == "not-learning" else (),
    )  # fmt: skip


def learned(gaps: list[float], floor: float) -> bool:
    """Whether the held-out loss lies below the input-blind ``floor`` by the margin (a quarter
    of the floor: the model explains at least a quarter of what an input-blind one leaves) and by
    3 standard errors of the per-batch gaps. Measured in 300 Adam steps at lr 1e-3 (batch 16) on
    the labelled models of ``bench/truth``: every one that trains and had a finding for the
    probe to test ended 35% to 100% below its floor; a 32-layer GCN that over-smooths ended 4%
    below (``sample_models/gcn_deep.py``), and a sine network wrapped in residual connections
    by ``fix`` 19% below (it reaches R^2 0.13 in 1,000 steps where SIREN reaches 0.91:
    ``bench/fix_truth.md``). A slow learner with no finding (a linear recurrence on the unit
    circle, 2% below) is not-learning under ``--learn``, a warning. It is not measured from the
    start: a copy that starts far above the floor (an exploding init) and ends well below it
    learned from its inputs, however far it came."""
    margin = MARGIN * max(abs(floor), 1e-8)
    spread = statistics.stdev(gaps) / math.sqrt(len(gaps)) if len(gaps) > 1 else 0.0
    return mean_of(gaps) > max(margin, STANDARD_ERRORS * spread)


def _heldout(passes: Passes) -> tuple[float, list[float] | None]:
    """Mean held-out loss over ``HELDOUT_BATCHES`` batches, and per batch how far the input-blind
    floor lies above it: the loss with each output shifted by 1, 2 and 3 rows (averaged) minus
    the loss. Outputs whose rows are all alike are input-blind already: their gaps are 0. None
    when no output has a row per example, when shifted outputs leave the loss unchanged and so
    does scoring the output against another batch (a loss that reads no targets: SimSiam's), or
    when the loss draws random targets (the same output and inputs under another seed give
    another loss): nothing to learn from the inputs then."""
    model = passes.model
    was = model.training
    model.eval()
    losses, gaps = [], []
    try:
        for k in range(HELDOUT_BATCHES):
            with passes.seeded(HELDOUT_SEED_OFFSET + k), torch.enable_grad():
                batch = passes.inputs()
                output = passes.forward(batch)
                loss = float(passes.loss_of(output, batch)[0].detach())
                losses.append(loss)
                with passes.seeded(HELDOUT_SEED_OFFSET + HELDOUT_BATCHES + k):
                    again = float(passes.loss_of(output, batch)[0].detach())
                if again != loss and math.isfinite(loss):
                    return mean_of(losses), None  # random targets
                count = _rows(output, batch, passes.batch_size)
                shifted = [_shift(output, count, rows) for rows in SHIFTS]
                if any(rolled is None for rolled in shifted):
                    return mean_of(losses), None
                if all(_alike(output, rolled) for rolled in shifted):
                    gaps.append(0.0)
                    continue
                blind = mean_of([float(passes.loss_of(r, batch)[0].detach()) for r in shifted])
                if abs(blind - loss) <= 1e-6 * max(1.0, abs(loss)) and not _reads_targets(
                    passes, output, loss, HELDOUT_SEED_OFFSET + 2 * HELDOUT_BATCHES + k
                ):
                    return mean_of(losses), None  # the loss reads no targets
                gaps.append(blind - loss)
    finally:
        model.train(was)
    return mean_of(losses), gaps if all(math.isfinite(g) for g in gaps) else None


def _reads_targets(passes: Passes, output: Any, loss: float, seed: int) -> bool:
    """Whether the loss of ``output`` changes when it is scored against another batch: it reads
    targets from the inputs. Asked when shifting the output's rows left the loss unchanged,
    which a loss that reads no targets (SimSiam's) does, and so does a model whose outputs
    barely differ between examples (a recurrence that forgot the input that sets the target)."""
    with passes.seeded(seed):
        other = passes.inputs()
    try:
        again = float(passes.loss_of(output, other)[0].detach())
    except Exception:  # the other batch does not fit this output: say nothing of targets
        return False
    return math.isfinite(again) and abs(again - loss) > 1e-6 * max(1.0, abs(loss))


def mean_of(values: list[float]) -> float:
    return sum(values) / len(values)


def _alike(output: Any, rolled: Any) -> bool:
    """Whether every row of every tensor of ``output`` equals the next (to 1e-4 of its size)."""
    for a, b in zip(pytree.tree_leaves(output), pytree.tree_leaves(rolled), strict=True):
        if isinstance(a, torch.Tensor) and a.is_floating_point() and a.numel():
            size = float(a.detach().abs().max())
            if float((a.detach() - b.detach()).abs().max()) > 1e-4 * max(size, 1e-12):
                return False
    return True


def _rows(output: Any, batch: Any, batch_size: int) -> int:
    """How many examples ``output`` has a row for: the batch size when a tensor of the output
    has that many rows, else the first axis of the inputs' first tensor when an output tensor
    shares it (a graph network's ``example_inputs`` gives the whole graph's nodes, whatever the
    batch size); the batch size otherwise."""
    firsts = {leaf.shape[0] for leaf in pytree.tree_leaves(output) if _has_rows(leaf)}
    if batch_size in firsts:
        return batch_size
    given = [leaf.shape[0] for leaf in pytree.tree_leaves(batch) if _has_rows(leaf)]
    return given[0] if given and given[0] in firsts else batch_size


def _has_rows(leaf: Any) -> bool:
    return isinstance(leaf, torch.Tensor) and leaf.dim() > 0


def _shift(output: Any, rows: int, by: int) -> Any | None:
    """``output`` with every tensor that has ``rows`` rows rolled by ``by`` rows; None if none
    has (or there are too few rows to shift)."""
    leaves, spec = pytree.tree_flatten(output)
    moved = False
    for i, leaf in enumerate(leaves):
        if _has_rows(leaf) and leaf.shape[0] == rows > by:
            leaves[i] = leaf.roll(by, 0)
            moved = True
    return pytree.tree_unflatten(leaves, spec) if moved else None


def _still(model: nn.Module, before: dict[str, torch.Tensor]) -> tuple[str, ...]:
    """Parameters whose relative change is under a hundredth of the median's: the layers
    training did not move (labelled as the report names them)."""
    change = {}
    for name, p in model.named_parameters():
        if name in before:
            size = float(torch.linalg.vector_norm(before[name].double()))
            moved = float(torch.linalg.vector_norm((p.detach() - before[name]).double()))
            change[name] = moved / size if size > 0 else math.inf
    if len(change) < 2:
        return ()
    ranked = sorted(change.values())
    median = ranked[len(ranked) // 2]
    still = [n for n, c in change.items() if c < 0.01 * median]
    labels = collapse_names(still, list(change))
    return tuple(dict.fromkeys(labels[n] for n in still))
