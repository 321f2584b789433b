"""A PyTorch Lightning callback: watch the training's gradients with gradcheck.

    from gradcheck_cli.integrations.lightning import GradcheckCallback

    callback = GradcheckCallback(every=50)
    trainer = lightning.Trainer(max_epochs=1, callbacks=[callback])
    trainer.fit(module, loader)
    print(callback.report.to_yaml())

Needs ``lightning`` (or the older ``pytorch_lightning``). Every ``every``-th optimizer step is
measured: from the start of its batch to ``on_before_optimizer_step``, when the gradients are
complete and not yet clipped or applied (with gradient accumulation, all micro-batches of the
step). The hooks are added when training starts and removed when it ends, also when it fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import torch

from gradcheck_cli.findings import Report
from gradcheck_cli.layer_facts import first_tensor
from gradcheck_cli.watching import Watcher, watch

try:
    from lightning.pytorch import Callback
except ImportError:
    try:  # the package's older name
        from pytorch_lightning import Callback  # type: ignore[assignment]
    except ImportError:
        raise ImportError(
            "the Lightning callback needs PyTorch Lightning: pip install 'gradcheck-cli[lightning]'"
        ) from None


class GradcheckCallback(Callback):  # type: ignore[misc]
    """Samples every ``every``-th optimizer step; ``report`` is set when training ends."""

    def __init__(self, every: int = 50, **options: Any) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        self.every = every
        self.options = options
        self.report: Report | None = None
        self._stack: contextlib.ExitStack | None = None
        self._watcher: Watcher | None = None
        self._measuring = False  # this batch's step is a sampled one

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Start watching the LightningModule."""
        self._stack = contextlib.ExitStack()
        self._watcher = self._stack.enter_context(
            watch(
                pl_module,
                every=self.every,
                manual=True,
                # Lightning's DDP strategies wrap the module themselves: merge across the ranks.
                distributed=trainer.world_size > 1,
                **self.options,
            )
        )

    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        """Measure this batch when its optimizer step is a sampled one."""
        self._measuring = self._watcher is not None and trainer.global_step % self.every == 0
        if self._watcher is None or not self._measuring:
            return
        first = first_tensor(batch)
        size = int(first.shape[0]) if first is not None and first.dim() > 0 else None
        self._watcher.begin_step(size)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Keep the loss ``training_step`` returned for a sampled step (the report's losses)."""
        if self._watcher is None or not self._measuring:
            return
        self._measuring = False
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, torch.Tensor) and loss.numel() == 1:
            self._watcher.note_loss(loss)

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        """Read the gradients of a sampled step before the optimizer uses them."""
        if self._watcher is not None:
            self._watcher.end_step()

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        """Stop watching and keep the report."""
        if self._watcher is not None:
            self.report = self._watcher.report()
        self.close()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """Remove the hooks when training fails."""
        self.close()

    def close(self) -> None:
        """Remove the hooks (also called by on_train_end)."""
        if self._stack is not None:
            self._stack.close()
            self._stack = None
            self._watcher = None

    def __del__(self) -> None:
        self.close()
