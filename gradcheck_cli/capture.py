"""The capture context manager: measure a model while a block runs, then undo everything.

:func:`capture` registers every hook inside one :class:`contextlib.ExitStack` that is entered
before the first hook exists, so no hook survives an exception. On exit it also restores what the
diagnosis touched: each module's ``training`` flag, each parameter's ``requires_grad`` and
existing ``.grad``, and whatever forward passes changed or rebound (BatchNorm running statistics,
a buffer reassigned as ``self.ema = ...``, a kept ``self.last = y``; see
:mod:`gradcheck_cli.snapshot`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch
from torch import nn

from gradcheck_cli.errors import UsageError
from gradcheck_cli.hooks import Recorder
from gradcheck_cli.layer_facts import measured_modules
from gradcheck_cli.layers import is_normaliser
from gradcheck_cli.snapshot import ModelState, TorchGlobals
from gradcheck_cli.stats import LayerKind

# Modules being measured, by id: (the thread measuring them, how many captures it holds).
_BUSY: dict[int, tuple[int, int]] = {}
_BUSY_LOCK = threading.Lock()


@contextlib.contextmanager
def _one_thread_at_a_time(model: nn.Module) -> Iterator[None]:
    """Refuse to measure a model (or a module of it) that another thread is measuring: two
    threads' hooks on one model would mix their steps, and each restores the model's state
    under the other. The same thread may measure it again inside (nested captures)."""
    me = threading.get_ident()
    ids = [id(m) for m in model.modules()]
    with _BUSY_LOCK:
        if any(_BUSY.get(i, (me, 0))[0] != me for i in ids):
            raise UsageError(
                "this model is being measured by another thread; measure one model in one "
                "thread at a time (diagnose a copy, copy.deepcopy(model), to run two at once)"
            )
        for i in ids:
            _BUSY[i] = (me, _BUSY.get(i, (me, 0))[1] + 1)
    try:
        yield
    finally:
        with _BUSY_LOCK:
            for i in ids:
                owner, count = _BUSY[i]
                if count > 1:
                    _BUSY[i] = (owner, count - 1)
                else:
                    del _BUSY[i]


@contextlib.contextmanager
def capture(model: nn.Module, *, restore_state: bool = True) -> Iterator[Recorder]:
    """Measure ``model`` while the block runs forward and backward passes, then undo everything.

    The model is put in train mode inside the block. On exit, normally or by exception, every
    hook is removed and the model's mode, ``requires_grad`` flags, ``.grad`` tensors, buffers
    and attributes are as they were, as the very objects they were. With
    ``restore_state=False`` (watching the user's own training) only the hooks are added and
    removed: the training owns the model's state.
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(_one_thread_at_a_time(model))
        if restore_state:
            training = {m: m.training for m in model.modules()}
            stack.callback(restore_training, training)
            params = list(model.parameters())
            flags = [p.requires_grad for p in params]
            grads = [p.grad for p in params]
            stack.callback(_restore_params, params, flags, grads)
            stack.callback(ModelState(model).restore)
            stack.callback(TorchGlobals.read().restore)

        targets = measured_modules(model)
        recorder = Recorder(model, targets)
        stack.callback(recorder.release_tensor_hooks)
        for i, (_, module, kind) in enumerate(targets):
            if isinstance(module, torch.jit.ScriptModule):
                continue  # TorchScript refuses hooks: only parameter gradients are measured
            stack.callback(module.register_forward_hook(recorder.forward_hook(i, kind)).remove)
            if kind is LayerKind.NORM and is_normaliser(module):
                stack.callback(module.register_forward_pre_hook(recorder.norm_pre_hook(i)).remove)
        if restore_state:
            model.train()
        yield recorder


def restore_training(training: dict[nn.Module, bool]) -> None:
    """Put back each module's ``training`` flag as recorded."""
    for module, flag in training.items():
        module.training = flag


def _restore_params(
    params: list[nn.Parameter], flags: list[bool], grads: list[torch.Tensor | None]
) -> None:
    for p, flag, grad in zip(params, flags, grads, strict=True):
        p.requires_grad_(flag)
        p.grad = grad
