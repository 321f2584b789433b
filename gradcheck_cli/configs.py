"""Config classes in model specs: ``net.py:ResMLP(MLPConfig(depth=12))`` and ``net.py:ResMLP``
whose constructor takes ``cfg: MLPConfig``.

Models are often configured by a dataclass (or an attrs or pydantic class). A spec may call one
by name inside the model's arguments, with literal arguments of its own (or further config
calls); the name is looked up in the module the spec imports (a class defined in or imported by
that file), and only a config class is called: a dataclass, an attrs class or a pydantic model.
Nothing else runs: no other calls, no attribute access, no expressions. A required constructor
parameter annotated with a config class whose fields all have defaults, and not given in the
spec, is built from those defaults.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from gradcheck_cli.errors import ModelLoadError


@dataclass(frozen=True)
class ConfigCall:
    """``Name(args..., k=v, ...)`` inside a spec's arguments: a config class, called once its
    name is resolved in the spec's module (:func:`resolve`)."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()

    def __repr__(self) -> str:  # as the user wrote it, for messages and ModelSpec.call_text
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs]
        return f"{self.name}({', '.join(parts)})"


def is_config_class(obj: Any) -> bool:
    """A class whose instances hold a configuration: a dataclass, an attrs class or a pydantic
    model (v2 ``model_fields`` or v1 ``__fields__``)."""
    return isinstance(obj, type) and (
        dataclasses.is_dataclass(obj)
        or hasattr(obj, "__attrs_attrs__")
        or (
            (hasattr(obj, "model_fields") or hasattr(obj, "__fields__"))
            and any(base.__name__ == "BaseModel" for base in obj.__mro__)
        )
    )


def resolve(value: Any, namespace: Any, text: str) -> Any:
    """``value`` with every :class:`ConfigCall` in it (in lists, tuples, sets and dict values
    too) replaced by an instance of the config class it names in ``namespace``."""
    if isinstance(value, ConfigCall):
        cls = vars(namespace).get(value.name) if hasattr(namespace, "__dict__") else None
        if cls is None:
            raise ModelLoadError(
                f"'{text}': there is no name '{value.name}' in that module; a config class in "
                "the arguments must be defined in or imported by the model's file"
            )
        if not is_config_class(cls):
            raise ModelLoadError(
                f"'{text}': {value.name} is not a config class (a dataclass, an attrs class or "
                "a pydantic model); only those may be called inside a spec's arguments"
            )
        args = tuple(resolve(a, namespace, text) for a in value.args)
        kwargs = {k: resolve(v, namespace, text) for k, v in value.kwargs}
        return _construct(cls, text, repr(value), *args, **kwargs)
    if isinstance(value, (list, tuple, set, frozenset)):
        return type(value)(resolve(v, namespace, text) for v in value)
    if isinstance(value, dict):
        return {k: resolve(v, namespace, text) for k, v in value.items()}
    return value


def default_configs(
    build: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], text: str
) -> dict[str, Any]:
    """The keyword arguments ``build(*args, **kwargs)`` is missing that a config class can
    supply from its defaults: each required parameter annotated with a config class that is
    constructible with no arguments. Empty when nothing is missing or nothing can be built."""
    try:
        signature = inspect.signature(build)
    except (TypeError, ValueError):
        return {}
    try:
        bound = signature.bind_partial(*args, **kwargs)
    except TypeError:
        return {}
    missing = [
        p
        for p in signature.parameters.values()
        if p.name not in bound.arguments
        and p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    if not missing:
        return {}
    hints = _hints(build)
    found: dict[str, Any] = {}
    for parameter in missing:
        cls = _config_class_of(hints.get(parameter.name))
        if cls is None or not needs_no_arguments(cls):
            continue
        found[parameter.name] = _construct(cls, text, f"{cls.__name__}()")
    return found


def _hints(build: Callable[..., Any]) -> dict[str, Any]:
    """The resolved annotations of ``build``'s parameters (of ``__init__`` for a class);
    string annotations (``from __future__ import annotations``) resolved in its module."""
    target = build.__init__ if isinstance(build, type) else build  # type: ignore[misc]
    try:
        return typing.get_type_hints(target)
    except Exception:  # an annotation that does not resolve: read it as absent
        return {}


def _config_class_of(hint: Any) -> type | None:
    """The config class ``hint`` names: itself, or the one class of ``Optional[...]``."""
    if is_config_class(hint):
        return typing.cast(type, hint)
    members = [a for a in typing.get_args(hint) if a is not type(None)]
    if len(members) == 1 and is_config_class(members[0]):
        return typing.cast(type, members[0])
    return None


def needs_no_arguments(build: Any, supplied: Collection[str] = ()) -> bool:
    """Whether ``build()`` can be called with no arguments but ``supplied`` (by name): every
    other parameter has a default or is ``*args``/``**kwargs``."""
    try:
        signature = inspect.signature(build)
    except (TypeError, ValueError):
        return False
    return all(
        p.default is not inspect.Parameter.empty
        or p.name in supplied
        or p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        for p in signature.parameters.values()
    )


def _construct(cls: type, text: str, written: str, *args: Any, **kwargs: Any) -> Any:
    try:
        return cls(*args, **kwargs)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        raise ModelLoadError(
            f"'{text}': {written} raised {type(exc).__name__}: "
            f"{lines[0] if lines else '(no message)'}; check the config's field names and values"
        ) from exc
