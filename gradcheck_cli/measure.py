"""The measurement loop: a few seeded forward/backward passes under :func:`capture.capture`.

Each step draws a fresh batch under its own seed (inside :func:`torch.random.fork_rng`, so the
caller's random state is untouched), runs forward, loss and backward, and reads the step's totals
back in one transfer. A step whose totals contain NaN/Inf is run again, with the same seed, with
exact non-finite counting switched on: the common case pays nothing for it.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from gradcheck_cli.aggregate import GraphFacts, StepRecord, aggregate
from gradcheck_cli.capture import capture
from gradcheck_cli.choices import Amp, LossKind, ShardMode
from gradcheck_cli.cuts import find_cuts, position_cut, positions_reach
from gradcheck_cli.distributed import (
    Merger,
    Shard,
    materialise,
    shard_model,
    split_batch,
    wrap,
)
from gradcheck_cli.errors import InputError, ModelRunError, what_happened
from gradcheck_cli.hooks import Recorder
from gradcheck_cli.inputs.calling import (
    InputFactory,
    Labeled,
    LossFn,
    call_model,
    optional_inputs_not_given,
    resolve_loss,
    to_device,
)
from gradcheck_cli.inputs.shapes import DeclaredInputs, SyntheticInputs, forward_advice
from gradcheck_cli.memory import built_on_meta, is_out_of_memory
from gradcheck_cli.seeding import seeded
from gradcheck_cli.stats import INPUT, GraphCut, ModelStats, TemporalProfile
from gradcheck_cli.temporal import (
    PositionProfiler,
    cell_modules,
    probe_recurrent,
    recurrent_modules,
)

StepObserver = Callable[[int, int], None]


def _ignore(done: int, total: int) -> None:
    """The default progress observer: does nothing."""


@dataclass(frozen=True)
class Measurement:
    """Aggregated statistics plus the facts the report needs about how they were obtained."""

    stats: ModelStats
    loss: str


@dataclass(frozen=True)
class Passes:
    """Everything one measured step needs besides the step number."""

    model: nn.Module
    make_inputs: InputFactory
    loss_fn: LossFn | None
    loss: LossKind
    seed: int
    batch_size: int
    device: torch.device
    # Under torchrun (diagnose --shard): this rank's place, and the wrapper forward runs through.
    shard: Shard | None = None
    runner: nn.Module | None = None

    @contextlib.contextmanager
    def seeded(self, key: int) -> Iterator[None]:
        """Run the block under seed ``key`` of this run, leaving the caller's RNG untouched.

        One seed per step: a fresh batch each step, the same batch when a step is rerun.
        """
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with seeded(self.seed * 100_003 + key, devices):
            yield

    def step(
        self,
        recorder: Recorder,
        step: int,
        amp: Amp,
        on_loss: Callable[[torch.Tensor, Any], None] | None = None,
    ) -> tuple[StepRecord, str]:
        """One seeded forward/loss/backward pass under ``amp``, read back in one transfer.

        ``on_loss`` sees the loss, before backward runs (while its graph is still whole), and
        the batch.
        """
        with self.seeded(step):
            recorder.begin_step()
            inputs = self.inputs()
            dtype = amp.dtype
            autocast: contextlib.AbstractContextManager[Any] = (
                torch.autocast(self.device.type, dtype=dtype)
                if dtype is not None
                else contextlib.nullcontext()
            )
            with autocast:  # forward and loss only, as torch.amp recommends
                output = self.forward(inputs)
                value, used = self.loss_of(output, inputs)
            # Holding the output through backward would keep tensors (large logits) that
            # autograd frees early in a plain training step.
            del output
            if on_loss is not None:
                on_loss(value, inputs)
            try:
                value.reshape(()).float().backward()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # a backward hook of the model may sys.exit() too
                raise ModelRunError(
                    f"the backward pass {_advice(exc, 'a smaller --batch-size')}"
                ) from exc
            return recorder.end_step(value.detach().float().reshape(())), used

    def inputs(self) -> Any:
        """A batch from the input factory, on the device; its errors are usage errors."""
        try:
            batch = to_device(self.make_inputs(self.batch_size), self.device)
            if self.shard is not None:
                batch = split_batch(batch, self.shard, self.batch_size)
            return batch
        except InputError:
            raise
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            # Named as the user gave them: --input-shape, --data, batches(), example_inputs.
            described = getattr(self.make_inputs, "description", None)
            source = (
                f"making a batch of {self.batch_size} from {described}"
                if isinstance(described, str) and described
                else f"example_inputs({self.batch_size})"
            )
            if is_out_of_memory(exc):
                raise InputError(
                    f"{source} ran out of memory ({what_happened(exc)}); use a smaller "
                    "--batch-size or input shape"
                ) from exc
            raise InputError(f"{source} {what_happened(exc)}") from exc

    def forward(self, inputs: Any) -> Any:
        """The model's output; an exception in forward is a usage error."""
        try:
            return call_model(self.runner or self.model, inputs)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # sys.exit() in forward is the model's failure too
            made = self.make_inputs
            synthetic = isinstance(made, SyntheticInputs)
            given = isinstance(made, SyntheticInputs) and made.given
            advice = forward_advice(
                exc,
                synthetic=synthetic,
                inputs=_describe(inputs),
                given=given,
                declared=isinstance(made, DeclaredInputs),
            )
            raise ModelRunError(f"the model's forward pass {advice}") from exc

    def loss_of(self, output: Any, inputs: Any) -> tuple[torch.Tensor, str]:
        """The scalar loss and the name of the loss used; a bad loss is a usage error."""
        targets = inputs.targets if isinstance(inputs, Labeled) else None
        if self.loss_fn is not None:
            try:
                if targets is None:
                    value = self.loss_fn(output, inputs)
                else:  # --data with targets: loss_fn(output, inputs, targets)
                    value = self.loss_fn(output, inputs.inputs, targets)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                raise ModelRunError(f"loss_fn {_advice(exc, 'a smaller --batch-size')}") from exc
            used = "loss_fn"
        else:
            rows = (
                (self.shard.rows(self.batch_size), self.batch_size)
                if self.shard is not None
                else None
            )
            kind, value = resolve_loss(self.loss, output, targets, rows=rows)
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
        return value, used


@contextlib.contextmanager
def heap_frozen() -> Iterator[None]:
    """Keep Python's cyclic garbage collector off the objects that exist when the block starts.

    A diagnosis allocates Python objects by the thousand (hook records, graph walks, per-layer
    statistics), and every full collection they trigger scans every object of the process, the
    model's modules and torch's included: about 0.1 s each in a process holding a 1,000-layer
    MLP, several per diagnosis. ``gc.freeze`` moves the existing objects to a generation that
    collections skip; they are given back on exit. A process that froze objects itself is left
    alone.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


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
    amp: Amp = Amp.NONE,
    on_step: StepObserver = _ignore,
    shard: Shard | None = None,
    time_axis: int | None = None,
) -> Measurement:
    """Run ``steps`` measured passes and aggregate them.

    Under ``amp=fp16`` one more full-precision pass (step 0's batch) counts the gradient values
    float16 cannot hold (nonzero, below 2**-24): under fp16 autocast they are already zeros.

    Under ``--shard ddp`` the passes run through a DDP wrapper made here and freed here, with its
    reference cycles collected: its reducer then removes the hooks it put on the model's
    gradient accumulators while the process group is alive. Left to interpreter shutdown, it
    was torn down after the group, and the process aborted ("terminate called without an active
    exception", exit -6) in 4 to 7 of 12 two-rank runs on a loaded machine, torch 2.13.
    """
    ddp = shard is not None and shard.mode is ShardMode.DDP
    runner = wrap(model, shard, device) if shard is not None and ddp else None
    try:
        return _measure(
            Passes(model, make_inputs, loss_fn, loss, seed, batch_size, device, shard, runner),
            steps=steps,
            amp=amp,
            on_step=on_step,
            time_axis=time_axis,
        )
    finally:
        if runner is not None:
            del runner
            gc.collect()


def _measure(
    passes: Passes, *, steps: int, amp: Amp, on_step: StepObserver, time_axis: int | None
) -> Measurement:
    model, shard, device, seed = passes.model, passes.shard, passes.device, passes.seed
    records: list[StepRecord] = []
    shadow: list[StepRecord] = []
    used_loss = "loss_fn" if passes.loss_fn is not None else passes.loss.value
    temporal: list[TemporalProfile] = []
    first: list[tuple[GraphFacts, tuple[str, ...]]] = []  # step 0's graph and unfed inputs

    def read_first(loss: torch.Tensor, inputs: Any) -> None:
        first.append((recorder.structure(loss), optional_inputs_not_given(model, inputs)))

    with capture(model) as recorder, PositionProfiler.attach(model, time_axis) as positions:
        if shard is not None:
            recorder.merger = Merger(shard)
            if shard.mode is ShardMode.FSDP:
                # The graph's structure and the weights' norms come from the whole model, read
                # by one forward pass before it is sharded (FSDP2 swaps its parameters). A
                # meta-built model runs that pass on the meta device (shapes only); its weights
                # are read once each rank has initialised its shards.
                meta = built_on_meta(model)
                reader = replace(passes, device=torch.device("meta")) if meta else passes
                recorder.begin_step()
                with passes.seeded(0):
                    batch = reader.inputs()
                    value, _ = reader.loss_of(reader.forward(batch), batch)
                    read_first(value, batch)
                del value
                shard_model(model)
                if meta:
                    materialise(model, device, seed)
                    recorder.read_weights()
                recorder.rebind_params()
        for step in range(steps):
            if positions is not None:
                positions.step = step
            on_loss = read_first if step == 0 and not first else None
            record, used_loss = passes.step(recorder, step, amp, on_loss)
            if record.anomalous:
                with recorder.counting():
                    record, used_loss = passes.step(recorder, step, amp)
            records.append(record)
            on_step(step + 1, steps)
        if positions is not None:
            positions.enabled = False
            if (profile := positions.profile()) is not None:
                temporal.append(_seen(passes, recorder, profile, positions.time_axis))
        if amp is Amp.FP16:
            with recorder.counting_underflow():
                shadow.append(passes.step(recorder, 0, Amp.NONE)[0])
        cuts = _cuts(passes, recorder, records) if shard is None else ()
        if recurrent_modules(model) or cell_modules(model):
            recorder.active = False  # the probe's forward pass is not a measured step
            with passes.seeded(0):
                # Through the model itself, not DDP: the probe's backward is not a training step.
                plain = replace(passes, runner=None)
                temporal.extend(probe_recurrent(model, lambda: plain.forward(plain.inputs())))
        if recorder.merger is not None:
            recorder.merger.settle()
    structure, unfed = first[0] if first else (None, ())
    stats = replace(
        aggregate(recorder.infos, records, shadow, structure),
        temporal=tuple(temporal),
        inputs_not_given=unfed,
        cuts=cuts,
    )
    return Measurement(stats=stats, loss=str(used_loss))


def _step0_loss(passes: Passes) -> Callable[[], torch.Tensor]:
    """Step 0's forward pass and loss, through the model itself (not DDP), under step 0's seed:
    the probes' passes."""
    plain = replace(passes, runner=None)

    def run_loss() -> torch.Tensor:
        with plain.seeded(0):
            batch = plain.inputs()
            return plain.loss_of(plain.forward(batch), batch)[0]

    return run_loss


def _seen(
    passes: Passes, recorder: Recorder, profile: TemporalProfile, time_axis: int
) -> TemporalProfile:
    """A model-level profile whose first positions get exactly no gradient, told whether their
    values reach the loss all the same (:func:`cuts.positions_reach`) and, if so, where their
    gradient is dropped (:func:`cuts.position_cut`), with the recorder off."""
    cut = profile.cut_at()
    if profile.cell not in ("model", "attention") or cut is None or passes.shard is not None:
        return profile
    recorder.active = False  # the probe's passes are not measured steps
    try:
        place = None if profile.module == INPUT else profile.module
        run_loss = _step0_loss(passes)
        flows = positions_reach(passes.model, place, time_axis, cut, run_loss)
        operation, source = (
            position_cut(passes.model, place, time_axis, run_loss) if flows else ("", "")
        )
    finally:
        recorder.active = True
    return replace(profile, cut_values_reach=flows, cut_operation=operation, cut_source=source)


def _cuts(passes: Passes, recorder: Recorder, records: list[StepRecord]) -> tuple[GraphCut, ...]:
    """Trainable parameters of layers that ran, that got no gradient in any step, whose values
    reach the loss all the same (:func:`cuts.find_cuts`), probed through the model itself with
    step 0's batch while the recorder is off."""
    ungraded = [(i, p) for i, p in recorder.never_graded() if any(r.calls[i] for r in records)]
    if not ungraded:  # the usual case: every parameter of a layer that ran got a gradient
        return ()
    layers = recorder.layers
    names = {id(p): n for n, p in passes.model.named_parameters()}
    candidates = [(names[id(p)], p, layers[i][0]) for i, p in ungraded if id(p) in names]
    if not candidates:
        return ()
    recorder.active = False  # the probe's passes are not measured steps
    return find_cuts(passes.model, candidates, _step0_loss(passes))


def _advice(exc: BaseException, smaller: str) -> str:
    """``raised X: msg`` for a failure of the user's code, with advice when memory ran out."""
    if is_out_of_memory(exc):
        return f"ran out of memory ({what_happened(exc)}); use {smaller} or another --device"
    return what_happened(exc)


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_describe(v) for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_describe(v)}" for k, v in value.items()) + "}"
    return type(value).__name__
