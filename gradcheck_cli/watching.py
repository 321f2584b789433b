"""Watching the user's own training loop: ``with gradcheck_cli.watch(model, every=50) as w``.

Every ``every``-th forward pass of the model (the first one included) is measured with the same
hooks as ``diagnose``; the others run with the hooks switched off (one attribute test each). The
step's gradients are read when its backward pass ends (a callback queued on the autograd engine,
before the optimizer step), without clearing or changing them. ``w.report()`` aggregates the
sampled steps and runs the same checks, giving the same Report object as ``diagnose``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, cast

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.hooks import RemovableHandle

from gradcheck_cli.aggregate import StepRecord, aggregate
from gradcheck_cli.capture import capture
from gradcheck_cli.checks import run_checks
from gradcheck_cli.choices import ShardMode
from gradcheck_cli.config import AUTO, ConfigChoice, Settings, apply_mapping, project_settings
from gradcheck_cli.distributed import Merger, Shard, is_sharded
from gradcheck_cli.findings import Report, RunInfo
from gradcheck_cli.hooks import Recorder
from gradcheck_cli.layer_facts import first_tensor
from gradcheck_cli.model_info import describe_model
from gradcheck_cli.preflight import require_module
from gradcheck_cli.version import __version__


class Watcher:
    """Collects sampled steps of a training loop; see :func:`watch`."""

    def __init__(
        self,
        model: nn.Module,
        recorder: Recorder,
        every: int,
        settings: Settings,
        *,
        manual: bool = False,
    ):
        self.model = model
        self.every = every
        self.manual = manual
        self.settings = settings
        self.forwards = 0
        self.records: list[StepRecord] = []
        # The loss of measured steps, when the loop tells it (note_loss; the Lightning callback).
        self.losses: list[float] = []
        # Forward passes that could not be measured, by cause, for a report that measured none.
        self._eval_passes = 0
        self._no_grad_passes = 0
        self._armed = 0  # passes whose hooks were armed (a backward pass should follow)
        self._recorder = recorder
        self._batch = 0
        self._pending = False
        self._started = time.perf_counter()
        # The hook on a measured step's output: removed once its backward pass is read, so an
        # output the model or the loop keeps does not keep this watcher alive.
        self._output_hooks: list[RemovableHandle] = []
        recorder.active = False

    def begin_step(self, batch_size: int | None = None) -> None:
        """Measure the training step that starts now (``watch(..., manual=True)``).

        Every forward pass until :meth:`end_step` is measured (several with gradient
        accumulation). Calling it again before ``end_step`` changes nothing.
        """
        if self._pending:
            return
        self._recorder.begin_step(clear_grads=False)
        self._pending = True
        self._armed += 1
        if batch_size:
            self._batch = batch_size

    def end_step(self) -> None:
        """Read the measured step's gradients: after backward, before the optimizer step."""
        self._recorder.active = False
        self._collect()

    def pre_forward(self, module: nn.Module, args: Any, kwargs: dict[str, Any]) -> None:
        """Arm the hooks on every ``every``-th forward pass."""
        grad, training = torch.is_grad_enabled(), module.training
        self._no_grad_passes += not grad
        self._eval_passes += grad and not training
        armed = self.forwards % self.every == 0 and grad and training
        self.forwards += 1
        self._armed += armed
        if armed:
            self._recorder.begin_step(clear_grads=False)
            first = first_tensor(args) if args else first_tensor(kwargs)  # HF passes kwargs
            if first is not None and first.dim() > 0:
                self._batch = int(first.shape[0])
        else:
            self._recorder.active = False

    def post_forward(self, module: nn.Module, args: Any, output: Any) -> None:
        """Ask for a callback at the end of this step's backward pass."""
        if not self._recorder.active:
            return
        out = first_tensor(output)
        self._recorder.active = False  # the backward hooks are already registered
        if out is not None and out.requires_grad:
            self._pending = True
            self._output_hooks.append(out.register_hook(self._queue))

    def _queue(self, grad: torch.Tensor) -> None:
        # Queued from the first gradient of the step's backward pass, so it would run before
        # callbacks queued later in it (DDP's, which finishes averaging the gradients): it
        # queues the reading itself, which then runs after them.
        engine = torch.autograd.Variable._execution_engine
        engine.queue_callback(lambda: engine.queue_callback(self._collect))

    def release_output_hooks(self) -> None:
        """Remove the hooks on measured outputs (after their backward pass, and on exit)."""
        for handle in self._output_hooks:
            handle.remove()
        self._output_hooks.clear()

    def _collect(self) -> None:
        self.release_output_hooks()
        if not self._pending:
            return
        self._pending = False
        zero = torch.zeros((), device=next(self.model.parameters()).device)
        record = self._recorder.end_step(zero)
        if self._recorder.merger is None:
            # The loop's optimizer changes the weights between measured steps: each step's
            # ratios are against that step's weights (read before the optimizer steps). Sharded
            # weights keep the norms read at the start.
            record = replace(record, weight_norm=self._recorder.weight_norms())
        self.records.append(record)

    def note_loss(self, loss: float | torch.Tensor) -> None:
        """Record the loss of the step just measured (the report's loss list); a loop calls
        it after :meth:`end_step`, as the Lightning callback does with ``training_step``'s."""
        self.losses.append(float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss))

    def unmeasured(self) -> str:
        """Why forward passes went unmeasured, in words ("" when none was); the
        ``nothing-measured`` finding quotes it."""
        unanswered = self._armed - len(self.records)
        if self.manual:
            if not self._armed:
                return "manual=True and begin_step() was never called"
            return f"{unanswered} step(s) begun but never ended by end_step()" if unanswered else ""
        if not self.forwards:
            return "the model ran no forward pass inside the with block"
        causes = []
        if self._eval_passes:
            causes.append(f"{self._eval_passes} in eval() mode")
        if self._no_grad_passes:
            causes.append(f"{self._no_grad_passes} under torch.no_grad()")
        if unanswered:
            causes.append(f"{unanswered} with no backward pass through the model's output")
        return (
            f"{self.forwards} forward pass(es) of the model: " + ", ".join(causes) if causes else ""
        )

    def report(self) -> Report:
        """The diagnosis of the sampled steps so far (same checks and thresholds as diagnose).

        A report of no measured step is not healthy: it holds a ``nothing-measured`` error.
        """
        stats = replace(aggregate(self._recorder.infos, self.records), unmeasured=self.unmeasured())
        findings = run_checks(stats, self.settings.thresholds, self.settings.rules)
        params = list(self.model.parameters())
        device = params[0].device if params else torch.device("cpu")
        return Report(
            model=describe_model(self.model),
            run=RunInfo(
                steps=len(self.records),
                batch_size=max(1, self._batch),
                device=str(device),
                loss="user training loop",
                seed=0,
                seconds=time.perf_counter() - self._started,
                inputs=(
                    f"{len(self.records)} training steps, 1 in {self.every}"
                    if self.manual
                    else f"1 in {self.every} of {self.forwards} forward passes of the training loop"
                ),
                torch=str(torch.__version__),
                shard=(
                    self._recorder.merger.shard.mode.value
                    if self._recorder.merger is not None
                    else ShardMode.NONE.value
                ),
                world_size=self._recorder.merger.shard.world if self._recorder.merger else 1,
            ),
            findings=tuple(findings),
            layers=stats.layers,
            losses=tuple(self.losses),
            tool_version=__version__,
        )


@contextlib.contextmanager
def watch(
    model: nn.Module,
    every: int = 50,
    *,
    manual: bool = False,
    distributed: bool | None = None,
    config: ConfigChoice = AUTO,
    **options: Any,
) -> Iterator[Watcher]:
    """Measure every ``every``-th training step of the block's own loop; hooks gone on exit.

    ``options`` are the threshold and check settings of :func:`gradcheck_cli.diagnose`
    (``thresholds=``, ``checks=``, ``ignore_layers=``), applied on top of the project's config
    file (``config``: as for ``diagnose``). Only steps whose backward pass goes
    through the model's output are recorded. With ``manual=True`` the steps are not found from
    the model's forward passes: the caller marks each step to measure with
    :meth:`Watcher.begin_step` and :meth:`Watcher.end_step` (what the Lightning callback does,
    since a LightningModule's training_step need not call its own forward).

    In a data-parallel job (``model`` wrapped in ``DistributedDataParallel`` or sharded with
    FSDP2's ``fully_shard``, or ``distributed=True`` where a framework wraps it elsewhere, as
    Lightning and accelerate do), each sampled step is merged across the ranks of the default
    process group, as ``diagnose --shard ddp|fsdp`` merges them: ``report()`` is the same on
    every rank, that of the global batch. Every rank must then sample the same steps (the same
    ``every``).
    """
    require_module(model, "watch()")
    if every < 1:
        raise ValueError("every must be at least 1")
    settings = apply_mapping(project_settings(None, config), options, source="watch()")
    # Under DDP the layers are the wrapped module's (names without "module."); each sampled
    # step's measurements are merged across the ranks, as diagnose --shard ddp merges them.
    ddp = isinstance(model, nn.parallel.DistributedDataParallel)
    inner = cast(nn.Module, model.module) if ddp else model
    if any(type(m).__name__ == "FullyShardedDataParallel" for m in inner.modules()):
        raise ValueError(
            "watch() reads FSDP2 (fully_shard) models; FullyShardedDataParallel (FSDP1, as "
            "Lightning's strategy='fsdp' uses) keeps flat parameters that cannot be read per "
            "layer: shard with fully_shard (Lightning's ModelParallelStrategy) or use DDP"
        )
    with capture(inner, restore_state=False) as recorder, contextlib.ExitStack() as stack:
        # FSDP2 (fully_shard) makes every parameter a DTensor holding this rank's shard.
        sharded = any(is_sharded(p) for p in inner.parameters())
        if distributed is None:
            distributed = (ddp or sharded) and dist.is_initialized() and dist.get_world_size() > 1
        if distributed:
            if not dist.is_initialized():
                raise ValueError("watch(distributed=True) needs an initialised process group")
            mode = ShardMode.FSDP if sharded else ShardMode.DDP
            recorder.merger = Merger(Shard(dist.get_rank(), dist.get_world_size(), mode))
        watcher = Watcher(inner, recorder, every, settings, manual=manual)
        stack.callback(watcher.release_output_hooks)
        if not manual:
            stack.callback(
                model.register_forward_pre_hook(watcher.pre_forward, with_kwargs=True).remove
            )
            stack.callback(model.register_forward_hook(watcher.post_forward).remove)
        yield watcher
        if recorder.merger is not None:
            recorder.merger.settle()  # every rank leaves the block together (not on an error)
