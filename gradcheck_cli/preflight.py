"""Checks that a loaded model can run as asked, before any pass is measured.

A model can load and still be unable to run the way the settings ask: a lazy module whose
parameters have no shape yet, parameters on the ``meta`` device (shapes without data), a
TorchScript module asked to train (``--train-steps`` trains a copy, and a script module's
parameters are not the leaves an optimizer needs), a learning rate the parameters' dtype cannot
hold. Each is refused here with a message that names the cause, instead of surfacing half-way
through the run as an error inside torch.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from gradcheck_cli.choices import ShardMode
from gradcheck_cli.config import Settings
from gradcheck_cli.errors import ConfigError, ModelRunError
from gradcheck_cli.memory import built_on_meta, meta_blockers


def require_module(model: object, caller: str) -> None:
    """Raise a :class:`TypeError` that says what to pass when ``model`` is not a module (a
    path given where the model belongs: ``diagnose("model.py")``)."""
    if not isinstance(model, nn.Module):
        hint = (
            f"; for a model file, pass gradcheck_cli.loading.load_model({model!r}).module (its "
            ".example_inputs and .loss_fn too), or run `gradcheck diagnose` on it"
            if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__")
            else ""
        )
        raise TypeError(f"{caller} takes a torch.nn.Module, got {type(model).__name__}{hint}")


def check_runnable(model: nn.Module, settings: Settings) -> None:
    """Raise a :class:`ModelRunError` (or :class:`ConfigError`) when ``model`` cannot run with
    ``settings``; return quietly otherwise."""
    tensors = itertools.chain(model.named_parameters(), model.named_buffers())
    for name, tensor in tensors:
        if is_lazy(tensor):
            raise ModelRunError(
                f"'{name}' belongs to a lazy module (e.g. nn.LazyLinear) and has no shape yet: "
                "call the model once on an example batch in build_model() before returning it"
            )
        if tensor.is_meta and not (settings.shard is ShardMode.FSDP and built_on_meta(model)):
            raise ModelRunError(
                f"'{name}' is on the meta device (a shape without data): build the model on a "
                "real device, or call model.to_empty(device='cpu') and load its weights"
            )
    if (
        settings.shard is ShardMode.FSDP
        and built_on_meta(model)
        and (blocked := meta_blockers(model))
    ):
        raise ModelRunError(
            f"the model is on the meta device and {blocked[0]} holds tensors but has no "
            "reset_parameters() to initialise them after sharding: build it on a real device"
        )
    if settings.train_steps and isinstance(model, torch.jit.ScriptModule):
        raise ModelRunError(
            "--train-steps cannot train a TorchScript model (it trains a copy of the model's "
            "Python modules); pass the model's code (FILE.py or package.module:NAME)"
        )
    if settings.train_steps:
        lr = settings.lr or settings.optimizer.default_lr
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
        if dtype is not None and lr > torch.finfo(dtype).max:
            raise ConfigError(
                f"--lr {lr:g} is larger than the model's {str(dtype).removeprefix('torch.')} "
                f"parameters can hold ({torch.finfo(dtype).max:g}); use a learning rate that "
                "trains, e.g. 1e-3"
            )
        if dtype is not None and lr < torch.finfo(dtype).tiny:
            # Below the smallest normal number lr rounds toward 0: 1e-320 is 0 in float32,
            # so every step would leave the weights as they are.
            raise ConfigError(
                f"--lr {lr:g} is smaller than the model's {str(dtype).removeprefix('torch.')} "
                f"parameters can hold ({torch.finfo(dtype).tiny:g}); training would not move "
                "them: use a learning rate that trains, e.g. 1e-3"
            )
