"""Model specs to built modules: everything that turns what the user names into an ``nn.Module``.

A model spec is one of ``path/to/file.py``, ``path/to/file.py:NAME``, ``package.module:NAME``
(NAME optionally called with literal arguments, ``NAME(k=v, ...)``) or a saved ``model.pt``
(TorchScript, or a pickled module with ``--trust-pickle``); :mod:`gradcheck_cli.specs` parses it
and :mod:`gradcheck_cli.imports` imports the code. The model-file protocol is documented in
docs/models.md: ``build_model()``, optional ``example_inputs(batch_size)`` and optional
``loss_fn(output, inputs)``. Inputs the user does not give are inferred from the first layer and
checked by one forward pass (:func:`check_inferred_inputs`).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import io
import pickletools
import sys
import sysconfig
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gradcheck_cli.configs import default_configs, needs_no_arguments
from gradcheck_cli.configs import resolve as resolve_configs
from gradcheck_cli.errors import ModelLoadError, first_line, require_file, what_happened
from gradcheck_cli.imports import (
    cwd_importable,
    import_dotted,
    import_file,
    make_importable,
    script_argv,
)
from gradcheck_cli.inputs.calling import InputFactory, LossFn
from gradcheck_cli.memory import (
    WHAT_TO_DO,
    built_on_meta,
    count_on_meta,
    free_bytes,
    is_out_of_memory,
    meta_blockers,
    too_big,
)
from gradcheck_cli.seeding import seeded
from gradcheck_cli.specs import ModelSpec, SpecKind, is_zoo_spec, parse_spec


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
    if isinstance(build, nn.Module):
        return "the spec names a model instance, not a class or factory"
    with seeded(0):  # restores every generator afterwards
        try:
            with torch.device("meta"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                built = build(*spec.args, **spec.keywords)
        except Exception as exc:  # code that needs real tensors (loads a file, reads values)
            return f"building it on the meta device {what_happened(exc)}"
    if not isinstance(built, nn.Module) or not built_on_meta(built):
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
            f"'{label}': {what} raised TypeError: {first_line(exc)} (rerun with --debug for the "
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
