"""Model specs, example inputs and losses: everything that turns what the user names into tensors.

A model spec is one of ``path/to/file.py``, ``path/to/file.py:NAME``, ``package.module:NAME``
(NAME optionally called with literal arguments, ``NAME(k=v, ...)``) or a saved ``model.pt``
(TorchScript, or a pickled module with ``--trust-pickle``); :mod:`gradcheck_cli.specs` parses it
and :mod:`gradcheck_cli.imports` imports the code. The model-file protocol is documented in
docs/models.md: ``build_model()``, optional ``example_inputs(batch_size)`` and optional
``loss_fn(output, inputs)``. Inputs the user does not give are inferred from the first layer and
checked by one forward pass (:func:`check_inferred_inputs`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import inspect
import io
import math
import pickle
import pickletools
import re
import sys
import sysconfig
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.utils._pytree as pytree
from torch import nn

from gradcheck_cli.choices import LossKind
from gradcheck_cli.configs import default_configs, needs_no_arguments
from gradcheck_cli.configs import resolve as resolve_configs
from gradcheck_cli.errors import InputError, ModelLoadError, require_file, what_happened
from gradcheck_cli.imports import (
    cwd_importable,
    import_dotted,
    import_file,
    make_importable,
    script_argv,
)
from gradcheck_cli.memory import WHAT_TO_DO, count_on_meta, free_bytes, too_big
from gradcheck_cli.seeding import seeded
from gradcheck_cli.snapshot import preserved
from gradcheck_cli.specs import ModelSpec, SpecKind, is_zoo_spec, parse_spec

Inputs = Any  # a tensor, a tuple of positional inputs, or a dict of keyword inputs
InputFactory = Callable[[int], Inputs]
LossFn = Callable[..., torch.Tensor]  # loss_fn(output, inputs[, targets])


@dataclass(frozen=True)
class LoadedModel:
    """A model built from a spec, with whatever the model file provides besides the module."""

    module: nn.Module
    name: str
    example_inputs: InputFactory | None = None
    loss_fn: LossFn | None = None
    batches: Callable[[], Any] | None = None
    # Why a model asked for on the meta device (``on_meta=True``) was built whole instead.
    built_whole: str | None = None
    # The model file's ``time_axis``: which axis of its input is time (diagnose --time-axis).
    time_axis: int | None = None


# --- loading models ----------------------------------------------------------------------------


def load_model(
    spec: str, *, trust_pickle: bool = False, weights: str | None = None, on_meta: bool = False
) -> LoadedModel:
    """Build the model that ``spec`` names; raise :class:`ModelLoadError` with advice otherwise.

    ``spec`` is a zoo spec (:mod:`gradcheck_cli.zoo`) or one of the forms
    :func:`gradcheck_cli.specs.parse_spec` reads: a file, ``FILE.py:NAME``,
    ``package.module:NAME`` (NAME may be called with literal arguments, ``Net(hidden=128)``) or a
    saved ``.pt``. With ``on_meta`` a model built by a class or factory is built on the meta
    device (no memory, no values: ``diagnose --shard fsdp`` shards it, then initialises each
    rank's shards) when every module holding tensors can initialise them again; otherwise it
    is built whole and ``built_whole`` says why.
    """
    from gradcheck_cli.zoo import load_zoo

    if is_zoo_spec(spec):
        module, make = load_zoo(spec)
        whole = "zoo models are built whole" if on_meta else None
        return LoadedModel(module=module, name=spec, example_inputs=make, built_whole=whole)
    parsed = parse_spec(spec)
    if parsed.kind is SpecKind.SAVED:
        loaded = _load_saved(parsed.path, trust_pickle=trust_pickle)
        if on_meta:
            loaded = dataclasses.replace(loaded, built_whole="a saved model is loaded whole")
    elif parsed.kind is SpecKind.FILE:
        with script_argv(parsed.target):
            loaded = _from_namespace(import_file(parsed.path), parsed, on_meta)
    else:
        # Built inside the same context: a factory may import its siblings lazily.
        with cwd_importable(), script_argv(parsed.target):
            loaded = _from_namespace(import_dotted(parsed.target), parsed, on_meta)
    if weights is not None:
        load_weights(loaded.module, weights)
    return loaded


def _from_namespace(namespace: Any, spec: ModelSpec, on_meta: bool = False) -> LoadedModel:
    example = getattr(namespace, "example_inputs", None)
    loss_fn = getattr(namespace, "loss_fn", None)
    batches = getattr(namespace, "batches", None)
    time_axis = getattr(namespace, "time_axis", None)
    if time_axis is not None and (not isinstance(time_axis, int) or isinstance(time_axis, bool)):
        raise ModelLoadError(
            f"'{spec.text}': time_axis must be an integer (which axis of the input is time), "
            f"got {time_axis!r}"
        )
    whole = None
    if spec.name is not None or hasattr(namespace, "build_model"):
        build = _attribute(namespace, spec) if spec.name is not None else namespace.build_model
        refused = None if isinstance(build, nn.Module) else _not_a_model_builder(build)
        if refused is not None:
            # Before any call: `os:system('...')` or `builtins:exec('...')` must never run.
            raise ModelLoadError(
                f"'{spec.text}': {spec.name or 'build_model'} is {refused}; name an nn.Module "
                "class or a function that builds one"
            )
        spec = _with_configs(build, spec, namespace)
        module = _build_on_meta(build, spec) if on_meta else None
        if module is None or isinstance(module, str):
            whole = module
            module = _instantiate(build, spec)
    else:
        module = _find_single_model(namespace, spec)
        whole = (
            "the file defines a model instance, not a class or build_model()" if on_meta else None
        )
    return LoadedModel(
        module=module,
        name=spec.text,
        example_inputs=example if callable(example) else None,
        loss_fn=loss_fn if callable(loss_fn) else None,
        batches=batches if callable(batches) else None,
        built_whole=whole,
        time_axis=time_axis,
    )


def _build_on_meta(build: Any, spec: ModelSpec) -> nn.Module | str:
    """``build`` called on the meta device, or why the model must be built whole instead. The
    random generators are left as they were, for the whole build that may follow."""
    from gradcheck_cli.distributed import meta_blockers, on_meta

    if isinstance(build, nn.Module):
        return "the spec names a model instance, not a class or factory"
    with seeded(0):  # restores every generator afterwards
        try:
            with torch.device("meta"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                built = build(*spec.args, **spec.keywords)
        except Exception as exc:  # code that needs real tensors (loads a file, reads values)
            return f"building it on the meta device {what_happened(exc)}"
    if not isinstance(built, nn.Module) or not on_meta(built):
        return "building it on the meta device left some tensors on a real device"
    blocked = meta_blockers(built)
    if blocked:
        more = f" and {len(blocked) - 3} more" if len(blocked) > 3 else ""
        return (
            f"{', '.join(blocked[:3])}{more} hold tensors but have no reset_parameters() to "
            "initialise them after sharding"
        )
    return built


def _with_configs(build: Any, spec: ModelSpec, namespace: Any) -> ModelSpec:
    """``spec`` with its config calls made (``Net(Config(depth=12))``) and each required
    parameter of ``build`` annotated with a config class, and not given, built from the
    class's defaults (:mod:`gradcheck_cli.configs`)."""
    if isinstance(build, nn.Module):
        return spec
    args = tuple(resolve_configs(a, namespace, spec.text) for a in spec.args)
    kwargs = tuple((k, resolve_configs(v, namespace, spec.text)) for k, v in spec.kwargs)
    added = default_configs(build, args, dict(kwargs), spec.text)
    if args == spec.args and kwargs == spec.kwargs and not added:
        return spec
    return dataclasses.replace(spec, args=args, kwargs=kwargs + tuple(added.items()))


def _attribute(namespace: Any, spec: ModelSpec) -> Any:
    """``NAME`` or a dotted ``Class.factory`` looked up in the imported module."""
    assert spec.name is not None
    found = namespace
    for part in spec.name.split("."):
        if not hasattr(found, part):
            raise ModelLoadError(f"'{spec.text}': there is no name '{spec.name}' in that module")
        found = getattr(found, part)
    return found


def _instantiate(obj: Any, spec: ModelSpec) -> nn.Module:
    """Call a class or factory with the spec's literal arguments (none without parentheses)."""
    label = spec.text
    if isinstance(obj, nn.Module):
        if spec.call:
            raise ModelLoadError(
                f"'{label}': {spec.name} is a module instance, not a class or factory; name it "
                "without arguments"
            )
        return obj
    if not callable(obj):
        raise ModelLoadError(f"'{label}' is neither an nn.Module, a class nor a factory")
    what = spec.call_text() if spec.call else f"{spec.name or 'build_model'}()"
    try:
        built = obj(*spec.args, **spec.keywords)
    except TypeError as exc:
        mismatch = _signature_mismatch(obj, spec)
        if mismatch is not None:
            raise ModelLoadError(f"'{label}': {mismatch}") from exc
        raise ModelLoadError(
            f"'{label}': {what} raised TypeError: {_first_line(exc)} (rerun with --debug for the "
            "traceback)"
        ) from exc
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # sys.exit() in build_model too: not gradcheck's exit code
        too_big = memory_failure(exc, obj, spec)
        if too_big is not None:
            raise ModelLoadError(f"'{label}': {too_big}") from exc
        raise ModelLoadError(
            f"'{label}': {what} {what_happened(exc)} (rerun with --debug for the traceback)"
        ) from exc
    if not isinstance(built, nn.Module):
        raise ModelLoadError(
            f"'{label}' returned {type(built).__name__}, not an nn.Module; return the model"
        )
    return built


# Where Python's standard library lives (not its site-packages): no model builder comes from it.
_STDLIB = tuple(Path(sysconfig.get_paths()[key]).resolve() for key in ("stdlib", "platstdlib"))


def _not_a_model_builder(obj: Any) -> str | None:
    """Why ``obj`` may not be called to build a model, or None: only an nn.Module class or a
    Python function (or a class's method) from outside the standard library is called."""
    if isinstance(obj, functools.partial):
        return _not_a_model_builder(obj.func)
    if isinstance(obj, type):
        return None if issubclass(obj, nn.Module) else "a class that is not an nn.Module"
    func = obj.__func__ if inspect.ismethod(obj) else obj
    if not inspect.isfunction(func):
        return f"not a Python function ({type(obj).__name__}, built into Python or a library)"
    module = sys.modules.get(func.__module__ or "")
    where = getattr(module, "__file__", None)
    if where is None:
        return f"a function of the built-in module {func.__module__}"
    path = Path(where).resolve()
    packages = {"site-packages", "dist-packages"}
    if any(path.is_relative_to(root) for root in _STDLIB) and not packages & set(path.parts):
        return f"a function of Python's standard library ({func.__module__})"
    return None


def memory_failure(exc: BaseException, obj: Any, spec: ModelSpec) -> str | None:
    """For a build that ran out of memory: the model's size, counted by building it again on
    the meta device, and what is free; None for any other failure."""
    if not is_out_of_memory(exc):
        return None
    counted = count_on_meta(lambda: obj(*spec.args, **spec.keywords))
    if counted is None:
        return f"building the model ran out of memory ({what_happened(exc)}); {WHAT_TO_DO}"
    return too_big("the model", *counted, free_bytes())


def _signature_mismatch(obj: Any, spec: ModelSpec) -> str | None:
    """Why the arguments do not fit ``obj``'s signature, or None when they do (the TypeError
    then came from inside the constructor)."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(*spec.args, **spec.keywords)
    except TypeError as exc:
        name = str(spec.name or getattr(obj, "__name__", "the factory"))
        if not spec.call:
            return (
                f"calling {name} with no arguments failed ({exc}); give its arguments, "
                f"{name}(k=v, ...), or name a factory that takes none"
            )
        return f"{spec.call_text()} does not fit {name}{signature}: {exc}"
    return None


def _find_single_model(namespace: Any, spec: ModelSpec) -> nn.Module:
    """Without ``build_model``: exactly one module instance, else exactly one Module subclass."""
    own = getattr(namespace, "__name__", None)
    instances = [v for v in vars(namespace).values() if isinstance(v, nn.Module)]
    # A loss module such as `criterion = nn.CrossEntropyLoss()` is an nn.Module too; the model
    # is the one instance that has parameters.
    with_params = [m for m in instances if any(True for _ in m.parameters())]
    if len(with_params) == 1:
        return with_params[0]
    if len(instances) == 1:
        return instances[0]
    classes = [
        v
        for v in vars(namespace).values()
        if inspect.isclass(v)
        and issubclass(v, nn.Module)
        and v.__module__ == own
        and _no_arg_constructible(v)
    ]
    if len(instances) == 0 and len(classes) == 1:
        named = dataclasses.replace(spec, name=classes[0].__name__)
        return _instantiate(classes[0], _with_configs(classes[0], named, namespace))
    found = f"{len(instances)} module instances and {len(classes)} no-argument Module classes"
    raise ModelLoadError(
        f"'{spec.text}' defines no build_model() and {found}; define build_model() returning "
        "the model, or name it as FILE.py:NAME"
    )


def _no_arg_constructible(cls: type) -> bool:
    """Whether ``cls`` can be built without arguments: every parameter has a default, or is a
    config class built from its own defaults."""
    try:
        from_configs = default_configs(cls, (), {}, cls.__name__)
    except ModelLoadError:  # a config whose defaults do not construct
        return False
    return needs_no_arguments(cls, from_configs)


def _load_saved(path: Path, *, trust_pickle: bool) -> LoadedModel:
    require_file(path, f"model file '{path}'", ModelLoadError)
    if path.stat().st_size == 0:
        raise ModelLoadError(f"model file '{path}' is empty (0 bytes); save the model again")
    if _is_torchscript(path):
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise ModelLoadError(f"'{path}' is not a loadable TorchScript archive: {exc}") from exc
        return LoadedModel(module=module, name=str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as safe_error:
        if not _is_intact_pickle(path):
            # torch's own message advises loading it unsafely: never the answer here.
            raise ModelLoadError(
                f"'{path}' is not a PyTorch file, or it is damaged (truncated or corrupt); "
                "save the model again (torch.save or torch.jit.save)"
            ) from safe_error
        if not trust_pickle:
            raise ModelLoadError(
                f"'{path}' is a pickled object and unpickling runs arbitrary code; pass "
                "--trust-pickle if you trust this file"
            ) from safe_error
        # Only now, trusted: the model file plan.yaml names may be imported by unpickling.
        source = _plan_source(path)
        if source is not None:
            make_importable(source)
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except KeyboardInterrupt:
            raise
        except ModuleNotFoundError as exc:
            raise ModelLoadError(
                f"cannot unpickle '{path}': it needs the module '{exc.name}', which is not "
                "importable; keep the plan.yaml that gradcheck fix wrote beside it, or put the "
                "module's folder on PYTHONPATH"
            ) from exc
        except BaseException as exc:  # unpickling runs code: sys.exit() included
            raise ModelLoadError(
                f"cannot unpickle '{path}': it {what_happened(exc)}; make the classes it "
                "needs importable"
            ) from exc
    if isinstance(obj, nn.Module):
        return LoadedModel(module=obj, name=str(path))
    if isinstance(obj, Mapping) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelLoadError(
            f"'{path}' holds only a state dict (weights, no architecture); pass the model's "
            f"code as MODEL and this file as --weights {path}"
        )
    raise ModelLoadError(f"'{path}' holds a {type(obj).__name__}, not an nn.Module")


def _plan_source(saved: Path) -> Path | None:
    """The model file that the ``plan.yaml`` beside a saved model names, if it exists.

    ``gradcheck fix`` stores it relative to the plan's folder; plans written before that hold
    it relative to the folder ``fix`` ran in, which is tried second. Read only for a pickle the
    user trusts (``--trust-pickle``): nothing beside a ``.pt`` is looked at otherwise.
    """
    plan = saved.parent / "plan.yaml"
    if not plan.is_file():
        return None
    try:
        from gradcheck_cli.yaml_files import load_user_yaml

        data = load_user_yaml(plan.read_text(encoding="utf-8"))
        parsed = parse_spec(str(data.get("source", "")))
    except Exception:
        return None  # not a plan of ours: nothing to find the classes with
    if parsed.kind is not SpecKind.FILE:
        return None
    target = Path(parsed.target)
    for candidate in (plan.parent / target, target):
        if candidate.is_file():
            return candidate
    return None


_PICKLE_MAGIC = b"PK\x03\x04"  # a zip archive's first bytes (torch.save's format)


def _is_intact_pickle(path: Path) -> bool:
    """Whether ``path`` holds a whole pickle (in a torch zip archive, or the legacy format): a
    file that ``weights_only`` refuses is then a real pickle of code, not a damaged file."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith("data.pkl")]
                return bool(names) and _pickle_ends(io.BytesIO(archive.read(names[0])))
        with open(path, "rb") as handle:
            if handle.read(4) == _PICKLE_MAGIC:
                return False  # a zip archive whose directory is missing: truncated
            handle.seek(0)
            return _pickle_ends(handle)
    except (OSError, zipfile.BadZipFile, RuntimeError):
        return False


def _pickle_ends(handle: Any) -> bool:
    """Whether the pickle at ``handle`` parses to its STOP opcode (nothing is executed)."""
    last = None
    try:
        for opcode, _, _ in pickletools.genops(handle):
            last = opcode.name
    except Exception:
        return False
    return last == "STOP"


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_weights(module: nn.Module, weights: str) -> None:
    """Load a weights-only state dict into ``module``; a mismatch is a :class:`ModelLoadError`."""
    path = Path(weights)
    require_file(path, f"weights file '{weights}'", ModelLoadError)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(
            f"'{weights}' is not a weights-only state dict ({type(exc).__name__}); save it "
            "with torch.save(model.state_dict(), PATH)"
        ) from exc
    if (
        isinstance(state, Mapping)
        and "state_dict" in state
        and isinstance(state["state_dict"], Mapping)
    ):
        state = state["state_dict"]  # a common checkpoint layout
    if not isinstance(state, Mapping):
        raise ModelLoadError(f"'{weights}' holds a {type(state).__name__}, not a state dict")
    for key, tensor in state.items():
        if not isinstance(key, str):
            raise ModelLoadError(
                f"'{weights}' is not a state dict: key {key!r:.40} is not a parameter name; "
                "save it with torch.save(model.state_dict(), PATH)"
            )
        if not isinstance(tensor, torch.Tensor):
            raise ModelLoadError(
                f"'{weights}' is not a state dict: entry {key!r:.40} holds a "
                f"{type(tensor).__name__}; a state dict maps parameter names to tensors "
                "(torch.save(model.state_dict(), PATH))"
            )
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise ModelLoadError(f"'{weights}' does not match the model: {detail}") from exc


# --- inputs ------------------------------------------------------------------------------------

_DTYPES = {
    "float32": torch.float32,
    "float": torch.float32,
    "float64": torch.float64,
    "double": torch.float64,
    "float16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "long": torch.int64,
    "int32": torch.int32,
    "int": torch.int32,
    "bool": torch.bool,
}


@dataclass(frozen=True)
class InputShape:
    """One positional input: its shape without the batch dimension, dtype and integer range.

    ``high`` None (an integer shape given without a range) means [0, 2) until
    :func:`fit_token_range` sets it to the model's vocabulary.
    """

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32
    low: int = 0
    high: int | None = None

    @classmethod
    def parse(cls, text: str) -> InputShape:
        """Parse ``3x32x32``, ``3,32,32``, ``128:int64:0-30522`` or ``16:float64``."""
        parts = text.strip().split(":")
        if not 1 <= len(parts) <= 3 or not parts[0]:
            raise InputError(
                f"--input-shape '{text}' is malformed; write e.g. 3x32x32 or 128:int64:0-50257"
            )
        try:
            pieces = re.split(r"[x,]", parts[0])
            if not all(p.strip() for p in pieces):  # '8x' or '3,,32' is a typo, not a shape
                raise ValueError(parts[0])
            shape = tuple(int(d) for d in pieces)
        except ValueError:
            raise InputError(
                f"--input-shape '{text}': the shape must be integers separated by 'x' or ','"
            ) from None
        if not shape or any(d <= 0 for d in shape):
            raise InputError(f"--input-shape '{text}': every dimension must be a positive integer")
        dtype = torch.float32
        if len(parts) >= 2:
            if parts[1] not in _DTYPES:
                raise InputError(
                    f"--input-shape '{text}': unknown dtype '{parts[1]}'; use one of "
                    + ", ".join(sorted(_DTYPES))
                )
            dtype = _DTYPES[parts[1]]
        low, high = 0, None
        if len(parts) == 3:
            match = re.fullmatch(r"(-?\d+)-(-?\d+)", parts[2])
            if not match or int(match.group(1)) >= int(match.group(2)):
                raise InputError(
                    f"--input-shape '{text}': the range must be LOW-HIGH with LOW < HIGH (HIGH exclusive)"
                )
            low, high = int(match.group(1)), int(match.group(2))
        return cls(shape, dtype, low, high)

    def make(self, batch_size: int, device: torch.device) -> torch.Tensor:
        """A random batch: standard normal floats, or uniform integers in [low, high)."""
        size = (batch_size, *self.shape)
        if self.dtype.is_floating_point:
            return torch.randn(size, device=device).to(self.dtype)
        if self.dtype == torch.bool:
            return torch.randint(0, 2, size, device=device).bool()
        return torch.randint(self.low, self.top, size, device=device, dtype=self.dtype)

    @property
    def top(self) -> int:
        """The exclusive upper bound of integer inputs."""
        return 2 if self.high is None else self.high

    @property
    def integer(self) -> bool:
        """Whether the input holds integers (token ids) with a range."""
        return not self.dtype.is_floating_point and self.dtype != torch.bool

    def describe(self) -> str:
        """The shape as the user would write it, e.g. ``3x32x32:float32``."""
        text = "x".join(str(d) for d in self.shape) + ":" + str(self.dtype).removeprefix("torch.")
        if self.integer:
            text += f":{self.low}-{self.top}"
        return text

    def flag(self) -> str:
        """The shortest ``--input-shape`` value that gives this input, e.g. ``30``."""
        text = self.describe()
        return text.removesuffix(":float32")


_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding, nn.RNNBase)
_SPATIAL = {nn.Conv1d: (64,), nn.Conv2d: (32, 32), nn.Conv3d: (16, 16, 16)}


def first_layer(model: nn.Module) -> tuple[str, nn.Module] | None:
    """The first registered layer: a Linear/Conv/Embedding/RNN, or a module without children
    that has weights (the model itself when it is one).

    Parameters registered directly on a module with children, the root above all (a learned
    positional table, a class token), are looked through: they are added somewhere inside
    ``forward``, not applied to the input.
    """
    for name, module in model.named_modules():
        if isinstance(module, _LAYERS):
            return name, module
        has_weights = any(True for _ in module.parameters(recurse=False))
        if has_weights and not any(True for _ in module.children()):
            return name, module
    return None


def infer_input_shape(model: nn.Module) -> InputShape:
    """Guess the input from the first registered layer when that is unambiguous.

    Linear: ``(in_features,)``; Conv1d/2d/3d: channels by 64, 32x32 or 16x16x16 (a guess at the
    spatial size: a model that needs another must say so with ``--input-shape``); Embedding:
    32 token ids below ``num_embeddings``; a batch-first RNN: 32 steps of ``input_size``. The
    root's own parameters are looked through (see :func:`first_layer`).
    """
    found = first_layer(model)
    if found is not None:
        shape = _layer_input(found[1])
        if shape is not None:
            return shape
    raise InputError(
        "cannot infer the model's input from its first layer"
        + (f" ({_layer_text(*found)})" if found is not None else "")
        + "; pass --input-shape (e.g. 3x224x224, or 128:int64:0-30522 for token ids) or "
        "define example_inputs(batch_size)"
    )


def _layer_input(module: nn.Module) -> InputShape | None:
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in module.parameters(False)):
        return None  # LazyLinear's in_features is 0 until its first call: nothing to infer
    # A float64 or float16 model reads inputs of its own dtype (PyTorch does not promote).
    dtype = next(
        (p.dtype for p in module.parameters(recurse=False) if p.is_floating_point()),
        torch.float32,
    )
    if isinstance(module, nn.Linear):
        return InputShape((module.in_features,), dtype)
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return InputShape((module.in_channels, *_SPATIAL[type(module)]), dtype)
    if isinstance(module, nn.Embedding):
        return InputShape((32,), torch.int64, 0, module.num_embeddings)
    if isinstance(module, nn.RNNBase) and module.batch_first:
        return InputShape((32, module.input_size), dtype)
    return None


def _layer_text(name: str, module: nn.Module) -> str:
    """``Linear(in_features=30)`` and where it is: how messages name a layer."""
    if isinstance(module, nn.Linear):
        text = f"Linear(in_features={module.in_features})"
    elif isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        text = f"{type(module).__name__}(in_channels={module.in_channels})"
    elif isinstance(module, nn.Embedding):
        text = f"Embedding(num_embeddings={module.num_embeddings})"
    elif isinstance(module, nn.RNNBase):
        text = f"{type(module).__name__}(input_size={module.input_size}, batch_first={module.batch_first})"
    else:
        text = type(module).__name__
    return f"{text} '{name}'" if name else text


def first_embedding(model: nn.Module) -> nn.Embedding | None:
    """The first registered ``nn.Embedding``: the table token ids index."""
    return next((m for m in model.modules() if isinstance(m, nn.Embedding)), None)


def fit_token_range(shapes: list[InputShape], model: nn.Module) -> list[InputShape]:
    """Integer inputs given without a range draw ids in [0, num_embeddings) of the model's first
    embedding (a [0, 2) default would leave most of the vocabulary unused)."""
    embedding = first_embedding(model)
    if embedding is None:
        return shapes
    return [
        dataclasses.replace(s, high=embedding.num_embeddings) if s.integer and s.high is None else s
        for s in shapes
    ]


# --- checking inferred inputs ------------------------------------------------------------------

PROBE_BATCH = 2
_PROBE_SIZES = {
    nn.Conv1d: (64, 128, 256, 512, 1024, 16000),
    nn.Conv2d: (32, 28, 64, 96, 128, 224, 256, 299, 384, 512),
    nn.Conv3d: (16, 32, 64, 112),
}
_PROBE_LENGTHS = (32, 64, 128, 512)


def check_inferred_inputs(model: nn.Module, batch_size: int = 16) -> InputShape:
    """The inferred input, checked by one forward pass; when it fails, an :class:`InputError`
    that names the model's real sizes.

    The check runs like a measured step (training mode, no gradient) and leaves the model as it
    was: modes, buffers (BatchNorm statistics) and the global RNG are restored. When the
    inferred input does not run, inputs built from every layer's sizes are tried (each Linear's
    ``in_features``, each convolution's channels at common image sizes, each embedding's
    vocabulary at the lengths a positional table allows) and the first that runs is suggested.
    """
    lazy = next(
        (
            name
            for name, m in model.named_modules()
            if any(isinstance(p, nn.parameter.UninitializedParameter) for p in m.parameters(False))
        ),
        None,
    )
    if lazy is not None:
        raise InputError(
            f"'{lazy or type(model).__name__}' is a lazy module (e.g. nn.LazyLinear) with no "
            "shape yet, so no input can be inferred: call the model once on an example batch "
            "in build_model() before returning it"
        )
    layer = first_layer(model)
    try:
        shape = infer_input_shape(model)
    except InputError:
        found = _first_that_runs(model, layer, skip=None)
        if found is None:
            raise
        raise InputError(
            "cannot infer the model's input from its first layer"
            + (f", {_layer_text(*layer)}" if layer is not None else "")
            + f"; {found}"
        ) from None
    failure = _forward_failure(model, shape, min(batch_size, PROBE_BATCH))
    if failure is not None and batch_size > PROBE_BATCH:
        failure = _forward_failure(model, shape, batch_size)  # a model that fixes its batch size
    if failure is None:
        return shape
    assert layer is not None  # a shape was inferred from it
    head = (
        f"the model's forward pass fails on {shape.flag()}, the input inferred from its first "
        f"layer {_layer_text(*layer)} ({type(failure).__name__}: {_first_line(failure)})"
    )
    if isinstance(failure, SystemExit) or is_out_of_memory(failure):
        # Not a misfit of the input: no other input would run either.
        raise InputError(f"the model's forward pass {forward_advice(failure, synthetic=False)}")
    # The spatial size of a convolution's input was a guess: the one whose flattened features
    # fit the Linear layer after the convolutions is the model's own.
    for fitted in _fitted_spatial(model, layer[1], shape):
        if _forward_failure(model, fitted, min(batch_size, PROBE_BATCH)) is None:
            return fitted
    needed = _required_inputs(model)
    if len(needed) > 1:
        raise InputError(
            f"{head}; forward takes {len(needed)} inputs ({', '.join(needed)}): give "
            "--input-shape once for each, in order, or define example_inputs(batch_size)"
        )
    found = _first_that_runs(model, layer, skip=shape)
    if found is not None:
        raise InputError(f"{head}; {found}")
    raise InputError(
        f"{head}; no input built from the sizes of its layers runs either: pass --input-shape "
        "with the size forward expects, or define example_inputs(batch_size)"
    )


class _Reached(Exception):
    """Raised by a pre-hook to end a trial forward pass once it has what it measured."""


def _fitted_spatial(model: nn.Module, first: nn.Module, guess: InputShape) -> list[InputShape]:
    """Inputs of the first convolution's channels at the spatial sizes whose flattened
    features fit the ``in_features`` of the first Linear registered after it, nearest first.

    The features reaching that Linear are measured at the guessed size and at twice it (a
    pre-hook ends each trial there); a conv stack's flattened output grows as size**dims, so
    the size that gives ``in_features`` follows. Empty when the first layer is no convolution,
    no Linear follows it, or the features do not depend on the size (global pooling).
    """
    if not isinstance(first, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return []
    modules = list(model.modules())
    head = next(
        (m for m in modules[modules.index(first) :] if isinstance(m, nn.Linear)),
        None,
    )
    if head is None:
        return []
    size = guess.shape[1]
    features = [_features_reaching(model, head, guess, s) for s in (size, 2 * size)]
    if None in features or features[0] == features[1]:
        return []
    low, high = cast(list[int], features)
    growth = math.log(high / low) / math.log(2)  # about the number of spatial dims
    best = size * (head.in_features / low) ** (1 / growth)
    if not math.isfinite(best) or best < 1:
        return []
    sizes = sorted(
        {max(1, round(best) + d) for d in range(-3, 4)}, key=lambda s: (abs(s - best), s)
    )
    return [_at_size(guess, s) for s in sizes]


def _at_size(guess: InputShape, size: int) -> InputShape:
    """``guess`` (channels, then spatial dims) with every spatial dim ``size``."""
    return dataclasses.replace(guess, shape=(guess.shape[0], *(size,) * (len(guess.shape) - 1)))


def _features_reaching(
    model: nn.Module, head: nn.Linear, guess: InputShape, size: int
) -> int | None:
    """The last dimension of the input ``head`` gets when the model reads ``guess`` at
    ``size``, or None when forward fails before it."""
    seen: list[int] = []

    def stop(module: nn.Module, args: tuple[Any, ...]) -> None:
        if args and isinstance(args[0], torch.Tensor):
            seen.append(int(args[0].shape[-1]))
        raise _Reached

    handle = head.register_forward_pre_hook(stop)
    try:
        _forward_failure(model, _at_size(guess, size), PROBE_BATCH)
    finally:
        handle.remove()
    return seen[0] if seen else None


def _required_inputs(model: nn.Module) -> list[str]:
    """The positional parameters of ``forward`` that have no default."""
    try:
        parameters = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return []
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [
        p.name for p in parameters if p.kind in positional and p.default is inspect.Parameter.empty
    ]


def _candidates(model: nn.Module) -> list[tuple[InputShape, str, nn.Module]]:
    """Inputs the model's layers suggest, in registration order, with the layer each fits."""
    lengths = list(_PROBE_LENGTHS)
    for p in model.parameters():  # a (1, L, d) positional table fixes the sequence length L
        if isinstance(p, nn.parameter.UninitializedParameter):
            continue  # a lazy module's, shapeless until its first call
        if p.dim() == 3 and p.shape[0] == 1:
            lengths[:0] = [int(p.shape[1]), int(p.shape[1]) - 1]
    lengths = [n for i, n in enumerate(lengths) if n > 0 and n not in lengths[:i]]
    found: list[tuple[InputShape, str, nn.Module]] = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            found.append((InputShape((module.in_features,)), name, module))
        elif isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            dims = len(_SPATIAL[type(module)])
            for size in _PROBE_SIZES[type(module)]:
                shape = (module.in_channels, *(size,) * dims)
                found.append((InputShape(shape), name, module))
        elif isinstance(module, nn.Embedding):
            for n in lengths:
                ids = InputShape((n,), torch.int64, 0, module.num_embeddings)
                found.append((ids, name, module))
        elif isinstance(module, nn.RNNBase) and module.batch_first:
            for n in lengths:
                found.append((InputShape((n, module.input_size)), name, module))
    return found


def _first_that_runs(
    model: nn.Module, first: tuple[str, nn.Module] | None, skip: InputShape | None, limit: int = 40
) -> str | None:
    """Advice naming the first candidate input that runs, or None when none does."""
    tried: set[InputShape] = set() if skip is None else {skip}
    for shape, name, module in _candidates(model):
        if shape in tried:
            continue
        tried.add(shape)
        if len(tried) > limit:
            return None
        if _forward_failure(model, shape, PROBE_BATCH) is not None:
            continue
        if first is not None and module is first[1]:
            why = ""
        elif isinstance(module, nn.Embedding):
            why = f" (token ids for {_layer_text(name, module)})"
        else:
            why = f" (the input of {_layer_text(name, module)})"
        return f"{shape.flag()} runs{why}: try --input-shape {shape.flag()}"
    return None


def _forward_failure(model: nn.Module, shape: InputShape, batch_size: int) -> BaseException | None:
    """The exception one forward pass on a batch of ``shape`` raises, or None when it runs
    (``sys.exit()`` in forward included: it is the model's failure, not gradcheck's exit)."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with _trial(model, device):
        try:
            call_model(model, shape.make(batch_size, device))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            return exc
    return None


@contextlib.contextmanager
def _trial(model: nn.Module, device: torch.device) -> Iterator[None]:
    """A forward pass that changes nothing: training mode as in a measured step, no graph,
    buffers (BatchNorm running statistics), attributes forward rebinds and the global RNG
    restored afterwards."""
    modes = {m: m.training for m in model.modules()}
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with seeded(0, devices), torch.no_grad(), preserved(model):
            model.train()
            yield
    finally:
        for module, mode in modes.items():
            module.training = mode


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@dataclass(frozen=True)
class DeclaredInputs:
    """Random batches shaped like the model's own ``example_input_array`` (the attribute
    PyTorch Lightning reads for its summaries; any module may set it): each tensor's sample
    dimension becomes the batch size, floats are drawn from a standard normal and integers
    (token ids, labels) in the example's own range. A dict or tuple keeps its structure."""

    example: Any
    device: torch.device | None = None  # where the batches go (None: the example's device)

    def __call__(self, batch_size: int) -> Inputs:
        def draw(leaf: Any) -> Any:
            if not isinstance(leaf, torch.Tensor) or leaf.dim() == 0:
                return leaf
            shape = (batch_size, *leaf.shape[1:])
            device = self.device or leaf.device
            if leaf.is_floating_point() or leaf.is_complex():
                return torch.randn(shape, dtype=leaf.dtype, device=device)
            if leaf.dtype == torch.bool:
                return torch.rand(shape, device=device) < 0.5
            low, high = int(leaf.min()), int(leaf.max()) + 1
            return torch.randint(low, high, shape, dtype=leaf.dtype, device=device)

        return pytree.tree_map(draw, self.example)

    @property
    def description(self) -> str:
        """How the report names these inputs, e.g. ``example_input_array 1x16x16:float32``."""
        leaves = [t for t in pytree.tree_leaves(self.example) if isinstance(t, torch.Tensor)]
        shapes = ", ".join(
            ":".join(
                part
                for part in ("x".join(str(d) for d in t.shape[1:]), str(t.dtype).split(".")[-1])
                if part
            )
            for t in leaves
        )
        return f"example_input_array {shapes}"


def declared_inputs(model: nn.Module, device: torch.device | None = None) -> DeclaredInputs | None:
    """The model's ``example_input_array`` as an input factory drawing on ``device``, when it
    holds a tensor with a sample dimension (a LightningModule that sets it says what its
    forward takes)."""
    example = getattr(model, "example_input_array", None)
    leaves = [t for t in pytree.tree_leaves(example) if isinstance(t, torch.Tensor)]
    if not leaves or not any(t.dim() > 0 for t in leaves):
        return None
    return DeclaredInputs(example, device)


@dataclass(frozen=True)
class SyntheticInputs:
    """Random inputs of given shapes (``--input-shape`` or inferred): one tensor per shape, a
    tuple when there are several. A forward pass that fails on them may want other shapes."""

    shapes: tuple[InputShape, ...]
    device: torch.device
    given: bool = False  # the user's --input-shape, not inferred

    def __call__(self, batch_size: int) -> Inputs:
        tensors = tuple(s.make(batch_size, self.device) for s in self.shapes)
        return tensors[0] if len(tensors) == 1 else tensors

    @property
    def description(self) -> str:
        """How the report names these inputs, e.g. ``3x32x32:float32``."""
        return ", ".join(s.describe() for s in self.shapes)


def shapes_factory(
    shapes: list[InputShape], device: torch.device, *, given: bool = False
) -> InputFactory:
    """An input factory producing one tensor per shape (a tuple when there are several);
    ``given`` when the user named the shapes (``--input-shape``)."""
    return SyntheticInputs(tuple(shapes), device, given)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure (CUDA out of memory, or the CPU allocator's)."""
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def forward_advice(
    exc: BaseException, *, synthetic: bool, inputs: str = "", given: bool = False
) -> str:
    """What a failed forward pass did and what to do about it, to follow ``the model's forward
    pass``: out of memory asks for less, a misfit of inferred inputs (``synthetic``) for other
    shapes, of the user's ``--input-shape`` (``given``) for a check of them, anything else for
    the model or its inputs to be fixed. ``inputs`` describes them."""
    happened = what_happened(exc)
    on = f"; the inputs were {inputs}" if inputs else ""
    if is_out_of_memory(exc):
        return (
            f"ran out of memory ({happened}){on}; use a smaller --batch-size, a smaller model "
            "or another --device"
        )
    if isinstance(exc, SystemExit):
        return f"{happened}; forward must return the output, not end the process"
    if synthetic and given:
        return (
            f"{happened}{on} (from --input-shape): check those shapes, or fix forward (rerun "
            "with --debug for the traceback)"
        )
    if synthetic:
        return f"{happened}{on}: pass --input-shape or define example_inputs(batch_size)"
    return f"{happened}{on}: fix forward or the inputs (rerun with --debug for the traceback)"


@dataclass(frozen=True)
class Labeled:
    """A batch of real data with its targets (``--data``): the model gets ``inputs``."""

    inputs: Inputs
    targets: torch.Tensor


_TARGET_KEYS = ("target", "targets", "y")
_INPUT_KEYS = ("x", "inputs", "input")


def load_data(path: str | Path) -> tuple[Inputs, torch.Tensor | None]:
    """Read ``--data``: a ``.pt`` (tensor, tuple/list or dict), ``.npy`` or ``.npz`` file.

    A tensor is the inputs. A tuple or list is ``(inputs..., targets)``: its last element is the
    target. A dict is keyword inputs, except a ``target``/``targets``/``y`` entry, which is the
    target (Hugging Face ``labels`` stay inputs: those models compute their own loss). An
    ``.npz`` with ``x``/``inputs`` and ``y``/``targets`` arrays is ``(inputs, targets)``. The
    first dimension of every tensor is the sample dimension. Loaded weights-only: no code runs.
    """
    path = Path(path)
    require_file(path, f"data file '{path}'", InputError)
    try:
        if path.suffix in (".npy", ".npz"):
            import numpy as np

            raw: Any = np.load(path, allow_pickle=False)
            if path.suffix == ".npz":
                raw = {k: raw[k] for k in raw.files}
            data = _tensors(raw)
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except InputError:
        raise
    except Exception as exc:
        # NumPy takes any file it cannot parse for pickled data and advises loading it
        # unsafely; that advice is never right for --data, which holds arrays only.
        # torch's weights-only refusal does the same ("This file can still be loaded ...").
        if path.suffix in (".npy", ".npz"):
            detail = "it is not a NumPy array file, or it holds Python objects"
        elif isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in str(exc):
            detail = "it holds Python objects besides tensors, which --data never unpickles"
        else:
            detail = f"{type(exc).__name__}: {_first_line(exc)}"
        raise InputError(
            f"cannot read data file '{path}' ({detail}); use a .pt of tensors, a .npy or a "
            ".npz of numeric arrays"
        ) from exc
    inputs, target = _split_data(data, path)
    _check_batch(inputs, path, "inputs")
    if target is not None and not (isinstance(target, torch.Tensor) and target.dim() >= 1):
        raise InputError(
            f"data file '{path}': the targets must be a tensor with a sample dimension, got "
            f"{_kind(target)}"
        )
    return inputs, target


def _split_data(data: Any, path: Path) -> tuple[Any, Any]:
    if isinstance(data, Mapping):
        data = dict(data)
        target = next((data.pop(k) for k in _TARGET_KEYS if k in data), None)
        inputs_key = next((k for k in _INPUT_KEYS if k in data), None)
        if inputs_key is not None and len(data) == 1:
            return data[inputs_key], target
        return data, target
    if isinstance(data, (tuple, list)):
        if len(data) < 2:
            return (data[0] if data else ()), None
        rest = tuple(data[:-1])
        return (rest[0] if len(rest) == 1 else rest), data[-1]
    if isinstance(data, torch.Tensor):
        return data, None
    raise InputError(f"data file '{path}' holds a {type(data).__name__}, not tensors")


def _kind(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dim()}-d tensor"
    name = type(value).__name__
    if isinstance(value, (tuple, list, dict)) and not value:
        return f"an empty {name}"
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _check_batch(inputs: Any, path: Path, where: str, depth: int = 0) -> None:
    """Inputs are tensors with a sample dimension, in tuples, lists or dicts keyed by the
    forward's argument names; anything else is named before the run, not found by it."""
    usage = (
        "use a tensor, a tuple (inputs..., targets) or a dict of keyword inputs, each a tensor "
        "whose first dimension is the samples"
    )
    if isinstance(inputs, torch.Tensor):
        if inputs.dim() == 0:
            raise InputError(f"data file '{path}': {where} is a 0-d tensor (no samples); {usage}")
        return
    if depth < 4 and isinstance(inputs, Mapping) and inputs:
        for key, value in inputs.items():
            if not isinstance(key, str) or not key.isidentifier():
                raise InputError(
                    f"data file '{path}': key {key!r:.40} of {where} is not an argument name; "
                    f"{usage}"
                )
            _check_batch(value, path, f"{where}[{key!r}]", depth + 1)
        return
    if depth < 4 and isinstance(inputs, (tuple, list)) and inputs:
        for i, value in enumerate(inputs):
            _check_batch(value, path, f"{where}[{i}]", depth + 1)
        return
    raise InputError(f"data file '{path}': {where} is {_kind(inputs)}, not tensors; {usage}")


def _tensors(raw: Any) -> Any:
    if isinstance(raw, Mapping):
        return {k: _tensors(v) for k, v in raw.items()}
    return torch.from_numpy(raw.copy())


def data_factory(inputs: Inputs, targets: torch.Tensor | None, source: str) -> InputFactory:
    """Fresh batches of real data: ``batch_size`` rows drawn under the step's seed."""
    count = _rows(inputs)
    if count == 0:
        raise InputError(f"--data '{source}' holds 0 rows; give at least one sample")
    if targets is not None and targets.shape[0] != count:
        raise InputError(f"--data: {count} input rows but {targets.shape[0]} targets")

    def make(batch_size: int) -> Inputs:
        rows = torch.randperm(count)[: min(batch_size, count)]
        batch = _take(inputs, rows)
        return batch if targets is None else Labeled(batch, targets[rows])

    make.description = f"data {source} ({count} rows)"  # type: ignore[attr-defined]
    return make


_NARROW_FLOATS = (torch.float32, torch.float16, torch.bfloat16)


def model_dtype(model: nn.Module) -> torch.dtype | None:
    """The dtype of the model's first floating-point parameter."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), None)


def match_data_dtype(inputs: Inputs, model: nn.Module) -> tuple[Inputs, str | None]:
    """Cast float64 ``--data`` inputs to a float32/half model's dtype, with the note to print.

    NumPy arrays are float64 by default, and a float32 layer refuses a double input. A float64
    model keeps float64 data; integer inputs (token ids) are never touched.
    """
    dtype = model_dtype(model)
    if dtype not in _NARROW_FLOATS or not any(t.dtype == torch.float64 for t in _flat(inputs)):
        return inputs, None
    assert dtype is not None
    name = str(dtype).removeprefix("torch.")
    return _cast(inputs, dtype), (
        f"--data holds float64 inputs; cast to {name}, the dtype of the model's parameters"
    )


def _cast(inputs: Inputs, dtype: torch.dtype) -> Inputs:
    if isinstance(inputs, torch.Tensor):
        return inputs.to(dtype) if inputs.dtype == torch.float64 else inputs
    if isinstance(inputs, Mapping):
        return {k: _cast(v, dtype) for k, v in inputs.items()}
    return tuple(_cast(v, dtype) for v in inputs)


def _rows(inputs: Inputs) -> int:
    sizes = {t.shape[0] for t in _flat(inputs)}
    if len(sizes) != 1:
        raise InputError(f"--data: tensors disagree on the number of rows: {sorted(sizes)}")
    return sizes.pop()


def _flat(inputs: Inputs) -> list[torch.Tensor]:
    if isinstance(inputs, torch.Tensor):
        return [inputs]
    values = inputs.values() if isinstance(inputs, Mapping) else inputs
    return [t for v in values for t in _flat(v)]


def _take(inputs: Inputs, rows: torch.Tensor) -> Inputs:
    if isinstance(inputs, torch.Tensor):
        return inputs[rows]
    if isinstance(inputs, Mapping):
        return {k: _take(v, rows) for k, v in inputs.items()}
    return tuple(_take(v, rows) for v in inputs)


def batches_factory(batches: Callable[[], Any], source: str) -> InputFactory:
    """Real batches from a model file's ``batches()`` generator, one per step.

    A batch that is a tensor or a dict is the inputs; a tuple or list is ``(inputs..., targets)``
    (the DataLoader convention). Batches are remembered by the step's seed, so a step that is
    rerun (to count NaN/Inf exactly) sees the same batch.
    """
    try:
        iterator = iter(batches())
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise InputError(f"batches() in {source} {what_happened(exc)}") from exc
    seen: dict[int, Inputs] = {}

    def make(batch_size: int) -> Inputs:
        key = torch.initial_seed()  # the step's seed, set by the caller
        if key not in seen:
            try:
                batch = next(iterator)
            except StopIteration:
                raise InputError(
                    f"batches() in {source} ran out; yield at least --steps batches"
                ) from None
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                raise InputError(f"batches() in {source} {what_happened(exc)}") from exc
            if isinstance(batch, (tuple, list)) and len(batch) >= 2:
                rest = tuple(batch[:-1])
                seen[key] = Labeled(rest[0] if len(rest) == 1 else rest, batch[-1])
            else:
                seen[key] = batch
        return seen[key]

    make.description = f"batches() of {source}"  # type: ignore[attr-defined]
    return make


def copy_model(model: nn.Module) -> nn.Module:
    """A deep copy whose recurrent modules have their weights in one contiguous block again.

    ``copy.deepcopy`` breaks cuDNN's flat weight buffer of RNN/LSTM/GRU modules, which then
    warn and compact their weights on every call.
    """
    copied = copy.deepcopy(model)
    for module in copied.modules():
        if isinstance(module, nn.RNNBase):
            module.flatten_parameters()
    return copied


def to_device(inputs: Inputs, device: torch.device) -> Inputs:
    """Move every tensor in a (nested) input structure to ``device``."""
    if isinstance(inputs, Labeled):
        return Labeled(to_device(inputs.inputs, device), inputs.targets.to(device))
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device)
    if isinstance(inputs, tuple):
        return tuple(to_device(x, device) for x in inputs)
    if isinstance(inputs, list):
        return [to_device(x, device) for x in inputs]
    if isinstance(inputs, Mapping):
        return {k: to_device(v, device) for k, v in inputs.items()}
    return inputs


def call_model(model: nn.Module, inputs: Inputs) -> Any:
    """Call the model: a tuple is positional arguments, a dict keyword arguments, unless
    ``forward`` takes one batch argument whose name is none of the dict's keys
    (``forward(self, batch)`` reading ``batch["image"]``): then the dict is that argument."""
    if isinstance(inputs, Labeled):
        inputs = inputs.inputs
    if isinstance(inputs, tuple):
        return model(*inputs)
    if isinstance(inputs, Mapping):
        if _takes_one_batch(model, inputs):
            return model(inputs)
        return model(**inputs)
    return model(inputs)


def optional_inputs_not_given(model: nn.Module, inputs: Inputs) -> tuple[str, ...]:
    """The parameters of ``forward`` that default to None and that this batch does not give.

    A multimodal or entity-aware model (pixel_values, entity_ids, bbox) runs its towers only
    when those inputs come; layers that never ran are then explained by the inputs, not the
    model.
    """
    if isinstance(inputs, Labeled):
        inputs = inputs.inputs
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return ()
    if isinstance(inputs, Mapping) and not _takes_one_batch(model, inputs):
        given = set(inputs)
    else:
        count = len(inputs) if isinstance(inputs, tuple) else 1
        given = {p.name for p in params[:count]}
    return tuple(
        p.name
        for p in params
        if p.default is None
        and p.name not in given
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    )


def _takes_one_batch(model: nn.Module, inputs: Mapping[str, Any]) -> bool:
    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return False
    params = list(signature.parameters.values())
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return False
    named = {p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL}
    positional = [
        p
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    return bool(positional) and not set(inputs) <= named


# --- losses ------------------------------------------------------------------------------------


def primary_output(output: Any) -> torch.Tensor:
    """The tensor a loss is computed from: ``logits`` or the first tensor of the output."""
    if isinstance(output, torch.Tensor):
        return output
    logits = (
        output.get("logits") if isinstance(output, Mapping) else getattr(output, "logits", None)
    )
    if isinstance(logits, torch.Tensor):
        return logits
    values = output.values() if isinstance(output, Mapping) else output
    if isinstance(values, (tuple, list)) or isinstance(output, Mapping):
        for item in values:
            if isinstance(item, torch.Tensor) and item.is_floating_point():
                return item
            if isinstance(item, (tuple, list, Mapping)):
                try:
                    return primary_output(item)
                except InputError:
                    continue
    raise InputError(
        f"the model returned {type(output).__name__} with no floating-point tensor to take a "
        "loss of; define loss_fn(output, inputs) in the model file"
    )


def own_loss(output: Any) -> torch.Tensor | None:
    """A scalar ``loss`` the output carries itself (Hugging Face models given labels)."""
    loss = output.get("loss") if isinstance(output, Mapping) else getattr(output, "loss", None)
    if isinstance(loss, torch.Tensor) and loss.numel() == 1 and loss.is_floating_point():
        return loss.reshape(())
    return None


def resolve_loss(
    kind: LossKind,
    output: Any,
    targets: torch.Tensor | None = None,
    *,
    rows: tuple[slice, int] | None = None,
) -> tuple[LossKind | str, torch.Tensor]:
    """Compute the loss for ``output``; returns the loss actually used (for the report) too.

    ``auto``: the output's own ``.loss`` when it has one; cross-entropy for logits (2-D
    ``(N, C)``, 3-D ``(N, L, C)`` with classes last, 4-D+ ``(N, C, ...)``) against integer
    ``targets`` from ``--data``, or random labels; mean squared error against float ``targets``
    or a standard normal target otherwise. ``rows`` (this rank's slice of a global batch of
    that many rows, under torchrun) draws the random targets for the whole batch and keeps the
    slice's, so every rank's targets are those of one process on the whole batch.
    """
    if kind is LossKind.AUTO:
        carried = own_loss(output)
        if carried is not None:
            return "model-output-loss", carried
    y = primary_output(output)
    if kind is LossKind.AUTO:
        classes = _class_dim(y)
        integer_targets = targets is not None and not targets.is_floating_point()
        if targets is not None:
            kind = (
                LossKind.CROSS_ENTROPY if integer_targets and classes is not None else LossKind.MSE
            )
        else:
            kind = LossKind.CROSS_ENTROPY if classes is not None else LossKind.MSE
    y = y.float()
    if kind is LossKind.SUM:
        return kind, y.sum()
    if kind is LossKind.MSE:
        target = targets.float() if targets is not None else _drawn(torch.randn, y.shape, y, rows)
        if target.shape != y.shape:
            raise InputError(
                f"the --data targets have shape {tuple(target.shape)} but the output "
                f"{tuple(y.shape)}; use --loss or define loss_fn"
            )
        return kind, nn.functional.mse_loss(y, target)
    dim = _class_dim(y)
    if dim is None:
        raise InputError(
            f"cross-entropy needs logits with a class dimension, but the output has shape "
            f"{tuple(y.shape)}; use --loss mse or define loss_fn"
        )
    if dim != 1:
        y = y.movedim(dim, 1)
    target_shape = (y.shape[0], *y.shape[2:])
    if targets is not None:
        if tuple(targets.shape) != target_shape or targets.is_floating_point():
            raise InputError(
                f"cross-entropy needs integer targets of shape {target_shape}, but the --data "
                f"targets are {str(targets.dtype).removeprefix('torch.')} {tuple(targets.shape)}"
            )
        labels = targets.long()
        used = labels[labels != -100]  # cross-entropy's ignore_index
        if used.numel() and (int(used.min()) < 0 or int(used.max()) >= y.shape[1]):
            raise InputError(
                f"the --data targets must be class indices in [0, {y.shape[1]}) for an output "
                f"of {y.shape[1]} classes (or -100 to ignore a position), but they run from "
                f"{int(used.min())} to {int(used.max())}"
            )
        return LossKind.CROSS_ENTROPY, nn.functional.cross_entropy(y, labels)
    classes = y.shape[1]
    target = _drawn(
        lambda shape, **kw: torch.randint(0, classes, shape, **kw), target_shape, y, rows
    )
    return LossKind.CROSS_ENTROPY, nn.functional.cross_entropy(y, target)


def _drawn(
    draw: Callable[..., torch.Tensor],
    shape: Sequence[int],
    like: torch.Tensor,
    rows: tuple[slice, int] | None,
) -> torch.Tensor:
    """Random targets of ``shape``; with ``rows``, this slice of those of the whole batch (when
    the output is batch-first: its first dimension is the slice's length)."""
    part, whole = rows if rows is not None else (slice(0, 0), 0)
    if rows is None or not shape or shape[0] != part.stop - part.start:
        return draw(tuple(shape), device=like.device)
    return draw((whole, *shape[1:]), device=like.device)[part]


def _class_dim(y: torch.Tensor) -> int | None:
    if not y.is_floating_point() or y.dim() < 2:
        return None
    dim = 2 if y.dim() == 3 else 1
    return dim if y.shape[dim] > 1 else None
