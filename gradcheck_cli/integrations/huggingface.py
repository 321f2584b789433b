"""A Hugging Face ``Trainer`` callback: watch the training's gradients with gradcheck.

    from gradcheck_cli.integrations.huggingface import GradcheckCallback

    callback = GradcheckCallback(every=50)
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[callback])
    trainer.train()
    print(callback.report.to_yaml())

Needs ``transformers`` (and the ``accelerate`` its Trainer needs). The hooks are added when
training begins and removed when it ends, also when it fails.
"""

from __future__ import annotations

import contextlib
from typing import Any

from transformers import TrainerCallback

from gradcheck_cli.findings import Report
from gradcheck_cli.watching import Watcher, watch


class GradcheckCallback(TrainerCallback):  # type: ignore[misc]
    """Samples every ``every``-th training step; ``report`` is set when training ends."""

    def __init__(self, every: int = 50, **options: Any) -> None:
        self.every = every
        self.options = options
        self.report: Report | None = None
        self._stack: contextlib.ExitStack | None = None
        self._watcher: Watcher | None = None

    def on_train_begin(
        self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any
    ) -> None:
        """Start watching the model the Trainer trains."""
        self._stack = contextlib.ExitStack()
        # Under accelerate/torchrun DDP the Trainer wraps the model itself: merge across ranks.
        distributed = getattr(args, "world_size", 1) > 1
        self._watcher = self._stack.enter_context(
            watch(model, every=self.every, distributed=distributed, **self.options)
        )

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Stop watching and keep the report."""
        if self._watcher is not None:
            self.report = self._watcher.report()
        self.close()

    def close(self) -> None:
        """Remove the hooks (also called by on_train_end)."""
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def __del__(self) -> None:
        self.close()
