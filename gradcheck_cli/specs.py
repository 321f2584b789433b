"""Model specs: the text the user names a model with, parsed into a :class:`ModelSpec`.

A spec is ``path/to/file.py``, ``path/to/file.py:NAME``, ``package.module:NAME`` or a saved
``model.pt``; NAME may be called with literal arguments, ``net.py:Net(in_dim=30, hidden=128)``.
The arguments are parsed with :mod:`ast` and each is read with :func:`ast.literal_eval`, so a
spec can never run code: numbers, strings, bytes, ``True``/``False``/``None`` and tuples, lists,
dicts and sets of them are accepted; names, attribute access and other calls are refused. The one
call allowed is a config class by name, ``Net(Config(depth=12))``, kept as a
:class:`~gradcheck_cli.configs.ConfigCall` and called only once the model's module shows it is a
dataclass, attrs or pydantic class (:mod:`gradcheck_cli.configs`). Zoo specs
(``hf:``, ``torchvision:``, ``timm:``) are recognised by :mod:`gradcheck_cli.zoo` before this.
"""

from __future__ import annotations

import ast
import enum
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradcheck_cli.configs import ConfigCall
from gradcheck_cli.errors import ModelLoadError

SAVED_SUFFIXES = (".pt", ".pth", ".ts", ".pkl")
LITERALS = (
    "numbers, strings, True/False/None and tuples, lists, dicts or sets of them, and config "
    "classes called with those, e.g. Net(in_dim=30, hidden=128) or Net(Config(depth=12))"
)

# ':NAME' or ':NAME(...)' at the end of the spec; NAME may be dotted (Class.factory). The
# leftmost ':' followed by an identifier wins, so a ':' inside the arguments stays there.
_TAIL = re.compile(
    r":(?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*(?P<args>\(.*)?$", re.DOTALL | re.ASCII
)
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*", re.ASCII)
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")  # a Windows drive letter is not a NAME separator


ZOOS = ("hf", "torchvision", "timm")
ZOO_CONFIG = "the zoo spec's config file"


def is_zoo_spec(spec: str) -> bool:
    """``hf:...``, ``torchvision:...`` or ``timm:...`` (built by :mod:`gradcheck_cli.zoo`)."""
    prefix, sep, _ = spec.partition(":")
    return bool(sep) and prefix in ZOOS


def zoo_files(spec: str) -> dict[str, Path]:
    """The files a zoo spec reads, by what they are (``hf:Class:config.json``'s config): inputs
    that no output of the run may replace."""
    zoo, _, rest = spec.partition(":")
    config_path = rest.partition(":")[2] if zoo == "hf" else ""
    return {ZOO_CONFIG: Path(config_path)} if config_path else {}


class SpecKind(enum.Enum):
    """Where the model comes from."""

    FILE = "file"  # path/to/file.py[:NAME[(...)]]
    MODULE = "module"  # package.module:NAME[(...)], imported as python -m would
    SAVED = "saved"  # model.pt: TorchScript or a pickled module


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec.

    ``name`` is the attribute to build (None: the file's ``build_model()`` or its single model);
    ``call`` is True when the spec gives parentheses, with ``args`` and ``kwargs`` their literal
    values.
    """

    text: str
    kind: SpecKind
    target: str  # the file path or the dotted module name
    name: str | None = None
    call: bool = False
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()

    @property
    def path(self) -> Path:
        """The file a FILE or SAVED spec names."""
        return Path(self.target)

    @property
    def keywords(self) -> dict[str, Any]:
        """The keyword arguments as a dict."""
        return dict(self.kwargs)

    def call_text(self) -> str:
        """NAME with its arguments as Python would write them, e.g. ``Net(30, hidden=128)``."""
        assert self.name is not None
        if not self.call:
            return self.name
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs]
        return f"{self.name}({', '.join(parts)})"


def parse_spec(text: str) -> ModelSpec:
    """Parse a model spec; a malformed one raises :class:`ModelLoadError` saying what is allowed."""
    spec = text.strip()
    start = 3 if _DRIVE.match(spec) else 0
    match = _TAIL.search(spec, start)
    if match is None:
        target, name, args_text = spec, None, None
    else:
        target, name, args_text = spec[: match.start()], match["name"], match["args"]
    if not target:
        raise ModelLoadError(f"'{text}' names no file or module before ':{name}'")
    suffix = Path(target).suffix
    if suffix == ".py":
        kind = SpecKind.FILE
    elif suffix in SAVED_SUFFIXES and name is None:
        kind = SpecKind.SAVED
    elif (
        name is not None
        and _DOTTED.fullmatch(target)
        # a dotted module, or a package folder of the current directory (pkg:build_model)
        and (not Path(target).exists() or (Path(target) / "__init__.py").is_file())
    ):
        kind = SpecKind.MODULE
    else:
        raise ModelLoadError(
            f"cannot use '{text}' as a model: give a .py file, FILE.py:NAME, "
            "package.module:NAME (each NAME may be called, NAME(k=v, ...)) or a saved .pt file"
        )
    if args_text is None:
        return ModelSpec(text, kind, target, name)
    assert name is not None
    args, kwargs = _parse_arguments(text, name, args_text)
    return ModelSpec(text, kind, target, name, True, args, kwargs)


def _parse_arguments(
    text: str, name: str, args_text: str
) -> tuple[tuple[Any, ...], tuple[tuple[str, Any], ...]]:
    """Literal arguments of ``NAME(...)``: ``ast.parse`` the call, ``literal_eval`` each one."""
    try:
        tree = ast.parse("_" + args_text.strip(), mode="eval")
    except (RecursionError, MemoryError):
        raise ModelLoadError(f"'{text}': the arguments of {name} are nested too deeply") from None
    except (UnicodeError, ValueError):  # a lone surrogate (an undecodable byte), a NUL
        raise ModelLoadError(
            f"the arguments of {name} hold a character that is not text (an undecodable byte); "
            f"write {name}(k=v, ...) with literal values: {LITERALS}"
        ) from None
    except SyntaxError as exc:
        raise ModelLoadError(
            f"'{text}': the arguments of {name} are not valid Python ({exc.msg}); write "
            f"{name}(k=v, ...) with literal values: {LITERALS}"
        ) from None
    call = tree.body
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "_"):
        raise ModelLoadError(
            f"'{text}': write one call, {name}(k=v, ...), with literal values: {LITERALS}"
        )
    try:
        return _call_arguments(text, call)
    except RecursionError:
        raise ModelLoadError(f"'{text}': the arguments of {name} are nested too deeply") from None


def _call_arguments(
    text: str, call: ast.Call
) -> tuple[tuple[Any, ...], tuple[tuple[str, Any], ...]]:
    args = tuple(_literal(text, node) for node in call.args)
    kwargs: list[tuple[str, Any]] = []
    for keyword in call.keywords:
        if keyword.arg is None:
            raise ModelLoadError(
                f"'{text}': **{ast.unparse(keyword.value)} is not allowed; write each keyword "
                f"argument out with a literal value: {LITERALS}"
            )
        if any(keyword.arg == seen for seen, _ in kwargs):
            # Python refuses a repeated keyword in a call; so does the spec.
            raise ModelLoadError(f"'{text}': the keyword argument '{keyword.arg}' is repeated")
        kwargs.append((keyword.arg, _literal(text, keyword.value)))
    return args, tuple(kwargs)


def _literal(text: str, node: ast.expr) -> Any:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        # Config(k=v): resolved, and called only if it is a config class, when the model is built.
        args, kwargs = _call_arguments(text, node)
        return ConfigCall(node.func.id, args, kwargs)
    if isinstance(node, ast.Starred):
        raise ModelLoadError(
            f"'{text}': *{ast.unparse(node.value)} is not allowed; write each argument out "
            f"with a literal value: {LITERALS}"
        )
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ModelLoadError(
            f"'{text}': the argument {ast.unparse(node)} is not a literal (names, calls and "
            f"attribute access are not evaluated); arguments may be {LITERALS}"
        ) from None


def spec_relative_to(text: str, folder: Path) -> str:
    """``text`` with its file, if it names one, written relative to ``folder`` (absolute where
    no relative path leads there, across Windows drives): how ``plan.yaml`` stores its source,
    so a saved fix finds it again from any working directory. Other specs are kept as given."""
    try:
        parsed = parse_spec(text)
    except ModelLoadError:
        return text
    if parsed.kind is not SpecKind.FILE:
        return text
    source = Path(parsed.target).resolve()
    try:
        target = Path(os.path.relpath(source, folder.resolve())).as_posix()
    except ValueError:
        target = str(source)
    return target + text.strip()[len(parsed.target) :]
