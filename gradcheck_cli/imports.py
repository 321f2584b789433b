"""Importing the user's code the way Python would, without letting it shadow anything.

A plain model file is imported under its own name (its stem), so pickles of its classes can be
loaded again, unless that name belongs to the standard library or an installed module: then under
a private name (``_gradcheck_model_json``) that nothing else can want. A file inside a package
(its folder holds ``__init__.py``) is imported as ``package.module``, so relative imports work. A
dotted ``module:NAME`` is looked for in the current directory. Every folder gradcheck puts on
``sys.path`` goes at its end: it can never shadow the standard library or an installed package
(a ``plistlib.py`` beside the model is not what ``import plistlib`` gets), and a user package
whose name is already importable from elsewhere is refused rather than imported as the wrong
thing. :func:`make_importable` lets a pickle find a model file's classes without importing
anything up front. A missing package is named with what to install.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from gradcheck_cli.errors import ModelLoadError, require_file

DISTRIBUTION = "gradcheck-cli"
# Import names that one of gradcheck's extras installs.
EXTRAS = {
    "transformers": "huggingface",
    "accelerate": "huggingface",
    "lightning": "lightning",
    "matplotlib": "plot",
}
# Import names whose pip package is spelled differently.
PIP_NAMES = {
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "cv2": "opencv-python",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "pytorch_lightning": "pytorch-lightning",
    "torch_geometric": "torch-geometric",
    "huggingface_hub": "huggingface-hub",
}
# Packages people import in model files: named without the "if it is your own module" aside.
KNOWN_PACKAGES = frozenset(
    {
        *EXTRAS,
        *PIP_NAMES,
        "timm",
        "torchvision",
        "torchaudio",
        "torchtext",
        "einops",
        "numpy",
        "scipy",
        "pandas",
        "safetensors",
        "datasets",
        "tokenizers",
        "sentencepiece",
        "xformers",
        "flash_attn",
        "peft",
        "mamba_ssm",
        "triton",
    }
)

_FILE_MODULES: set[str] = set()  # module names this process imported from model files
PRIVATE_PREFIX = "_gradcheck_model_"  # + stem: a model file named like a taken module


def install_hint(name: str) -> str:
    """The pip command that provides the importable module ``name``."""
    top = name.partition(".")[0]
    if top in EXTRAS:
        return f"pip install '{DISTRIBUTION}[{EXTRAS[top]}]'"
    return f"pip install {PIP_NAMES.get(top, top)}"


def missing_package_message(what: str, name: str) -> str:
    """One line for a ``ModuleNotFoundError`` of ``name`` raised while importing ``what``."""
    top = name.partition(".")[0]
    if top in KNOWN_PACKAGES:
        return f"{what} needs the '{top}' package, which is not installed: {install_hint(top)}"
    return (
        f"{what} imports '{name}', which is not installed: {install_hint(top)} (if '{top}' is "
        "your own module, it must be importable from the model file's folder)"
    )


@dataclass(frozen=True)
class PackagePlace:
    """Where a model file sits inside a package: its dotted name and the root's parent folder."""

    module: str  # e.g. "mypkg.model"
    root: Path  # the folder that holds the top-level package folder

    @property
    def top(self) -> str:
        """The top-level package name."""
        return self.module.partition(".")[0]


def package_of(path: Path) -> PackagePlace | None:
    """The package a file belongs to, found by walking up through folders with ``__init__.py``.

    None for a plain file, or when a folder's name cannot be a Python package name.
    """
    path = path.resolve()
    folder = path.parent
    parts = [] if path.stem == "__init__" else [path.stem]
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    if len(parts) < 2 and path.stem != "__init__":
        return None
    if not parts or not all(p.isidentifier() for p in parts):
        return None
    return PackagePlace(".".join(parts), folder)


def import_file(path: Path) -> ModuleType:
    """Import a model file: inside its package when it has one, else under its own name."""
    require_file(path, f"model file '{path}'", ModelLoadError)
    place = package_of(path)
    if place is not None:
        return _import_in_package(path, place)
    return _import_plain(path)


def module_name(path: Path) -> str:
    """The name a plain model file is imported under: its stem, unless that would take the place
    of the standard library's or an installed module (a file called ``json.py``, ``typing.py``):
    then a private name, so nothing else in the process gets the wrong module."""
    name = path.stem
    if _taken(name, path, str(path.resolve().parent)):
        return PRIVATE_PREFIX + name
    return name


def _import_plain(path: Path) -> ModuleType:
    """Import a file under :func:`module_name` with its folder at the end of ``sys.path``.

    At the end, sibling modules of the model file are found, but only under names nothing else
    provides: a sibling can never shadow the standard library or an installed package.
    """
    folder = str(path.resolve().parent)
    name = module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"cannot import '{path}' as a Python module")
    added = folder not in sys.path
    if added:
        sys.path.append(folder)
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        _forget(name, previous)
        if added and folder in sys.path:
            sys.path.remove(folder)
        if not isinstance(exc, KeyboardInterrupt):
            raise import_error(f"'{path}'", exc) from exc
        raise
    _FILE_MODULES.add(name)
    return module


class _ModelFileFinder(importlib.abc.MetaPathFinder):
    """Finds the private names of model files (``_gradcheck_model_json``) for unpickling."""

    def __init__(self) -> None:
        self.files: dict[str, Path] = {}

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        found = self.files.get(fullname)
        if found is None:
            return None
        return importlib.util.spec_from_file_location(fullname, found)


_FINDER = _ModelFileFinder()


def make_importable(path: Path) -> None:
    """Let a pickle that references the classes of model file ``path`` find them.

    Nothing is imported now: unpickling imports the module it names when it needs it. A file
    in a package gets its package root's parent, a plain file its folder, at the end of
    ``sys.path`` (shadowing nothing); a plain file imported under a private name is found
    under that name by a finder that knows only that name.
    """
    place = package_of(path)
    if place is not None:
        if str(place.root) not in sys.path:
            sys.path.append(str(place.root))
        return
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.append(folder)
    name = module_name(path)
    if name.startswith(PRIVATE_PREFIX):
        _FINDER.files[name] = path.resolve()
        if _FINDER not in sys.meta_path:
            sys.meta_path.append(_FINDER)


def _taken(name: str, path: Path, folder: str) -> bool:
    """Whether ``name`` already belongs to a module that is not this model file."""
    if name in sys.builtin_module_names or name in getattr(sys, "stdlib_module_names", ()):
        return True
    if name in sys.modules:
        return name not in _FILE_MODULES
    with _path_without(folder):
        try:
            found = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return False
    if found is None:
        return False
    where = _location(found)
    return not (isinstance(where, Path) and where.resolve() == path.resolve())


@contextlib.contextmanager
def _path_without(entry: str) -> Iterator[None]:
    """``sys.path`` without ``entry`` for the block: where would a name be found otherwise?"""
    saved = list(sys.path)
    sys.path[:] = [p for p in saved if p != entry]
    try:
        yield
    finally:
        sys.path[:] = saved


@contextlib.contextmanager
def script_argv(path: str) -> Iterator[None]:
    """``sys.argv`` as a script run with no arguments sees it, for the block.

    Research code often parses its arguments at import (``args = parser.parse_args()``); it must
    get its defaults, not gradcheck's own command line.
    """
    saved = sys.argv
    sys.argv = [path]
    try:
        yield
    finally:
        sys.argv = saved


def _import_in_package(path: Path, place: PackagePlace) -> ModuleType:
    """Import ``package.module`` with the package root's parent on ``sys.path`` (at its end:
    it can then never shadow an installed package; the package itself is checked first)."""
    _refuse_shadowing(place.top, place.root / place.top, f"'{path}' is in package '{place.top}'")
    root = str(place.root)
    added = root not in sys.path
    if added:
        sys.path.append(root)
    before = set(sys.modules)
    # The model module itself runs afresh each time, as a plain file does; its package and
    # siblings stay imported.
    previous = sys.modules.pop(place.module, None)
    try:
        module = importlib.import_module(place.module)
    except BaseException as exc:
        for name in set(sys.modules) - before:
            if name == place.top or name.startswith(place.top + "."):
                del sys.modules[name]
        if previous is not None:
            sys.modules[place.module] = previous
        if added and root in sys.path:
            sys.path.remove(root)
        if not isinstance(exc, KeyboardInterrupt):
            raise import_error(f"'{path}' (as {place.module})", exc, place.top) from exc
        raise
    found = getattr(module, "__file__", None)
    if found is None or Path(found).resolve() != path.resolve():
        raise ModelLoadError(
            f"importing '{path}' as {place.module} found {found} instead; another "
            f"'{place.top}' package is already imported"
        )
    return module


def _refuse_shadowing(top: str, mine: Path, what: str) -> None:
    """Refuse a user package or module (``mine``: its folder or file) named like one that is
    importable from elsewhere: importing would get the other one."""
    mine = mine.resolve()
    loaded = sys.modules.get(top)
    if loaded is not None:
        where: Path | str | None = _location_of(loaded)
    else:
        try:
            found = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            found = None
        if found is None:
            return
        where = _location(found)
    if isinstance(where, Path) and where.resolve() in (mine, mine / "__init__.py"):
        return
    if top in getattr(sys, "stdlib_module_names", ()) or top in sys.builtin_module_names:
        owner = f"the standard library's '{top}'"
    else:
        owner = f"the installed '{top}' ({where})" if where else f"another '{top}'"
    kind = "the folder" if mine.is_dir() else "the file"
    raise ModelLoadError(
        f"{what}, but that name is taken by {owner}, which an import would get instead; "
        f"rename {kind} {mine.name}"
    )


def _location(spec: importlib.machinery.ModuleSpec) -> Path | str | None:
    """The file or package folder a spec names; a string for built-in and frozen modules."""
    if spec.origin and spec.has_location:
        origin = Path(spec.origin)
        return origin.parent if origin.name == "__init__.py" else origin
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return spec.origin


def _location_of(module: ModuleType) -> Path | str | None:
    spec = getattr(module, "__spec__", None)
    if spec is not None:
        return _location(spec)
    file = getattr(module, "__file__", None)
    return Path(file) if file else None


def _forget(name: str, previous: ModuleType | None) -> None:
    if previous is None:
        sys.modules.pop(name, None)
    else:
        sys.modules[name] = previous


def import_error(what: str, exc: BaseException, package: str | None = None) -> ModelLoadError:
    """The one-line error for an exception raised while importing ``what`` (a file of
    ``package``, when it is in one)."""
    if isinstance(exc, SystemExit):
        return ModelLoadError(
            f"importing {what} called sys.exit({exc.code}); keep scripts' work under "
            "if __name__ == '__main__': (rerun with --debug for the traceback)"
        )
    if isinstance(exc, SyntaxError) and exc.lineno is None:
        # Python refuses some files before parsing a line: NUL bytes, a bad encoding.
        return ModelLoadError(f"{what} is not Python source ({exc.msg}); check the file")
    if isinstance(exc, SyntaxError):
        where = f" of {Path(exc.filename).name}" if exc.filename else ""
        return ModelLoadError(
            f"{what} has a syntax error at line {exc.lineno}{where}: {exc.msg}; fix the file"
        )
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        if package is not None and exc.name.startswith(package + "."):
            return ModelLoadError(
                f"{what} imports '{exc.name}', which does not exist in package '{package}'; "
                "check the import"
            )
        return ModelLoadError(missing_package_message(what, exc.name))
    return ModelLoadError(
        f"importing {what} raised {type(exc).__name__}: {exc}; fix the file "
        "(rerun with --debug for the traceback)"
    )


@contextlib.contextmanager
def cwd_importable() -> Iterator[None]:
    """The current directory, and its ``src/`` folder when it has one (the "src layout" of a
    package not installed), on ``sys.path`` for the block only: at its end, so that a file
    there never shadows the standard library or an installed package (``python -m`` puts it
    first; the module named on the command line is checked by :func:`import_dotted`)."""
    entries = [str(folder) for folder in _local_roots()]
    added = [entry for entry in entries if entry not in sys.path]
    sys.path.extend(added)
    try:
        yield
    finally:
        for entry in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)


def _local_roots() -> list[Path]:
    """Where a ``package.module`` spec is looked for besides installed packages: the current
    directory, then its ``src/`` folder."""
    cwd = Path.cwd()
    return [cwd, cwd / "src"] if (cwd / "src").is_dir() else [cwd]


def import_dotted(dotted: str) -> ModuleType:
    """Import ``package.module``, finding it in the current directory (call it inside
    :func:`cwd_importable`); a local module named like an importable one elsewhere is refused."""
    top = dotted.partition(".")[0]
    for root in _local_roots():
        for local in (root / top, root / f"{top}.py"):
            if local.exists():
                where = "the current directory" if root == Path.cwd() else f"'{root.name}/'"
                with _path_without(str(root)):
                    _refuse_shadowing(top, local, f"'{top}' is in {where}")
    try:
        return importlib.import_module(dotted)
    except ModuleNotFoundError as exc:
        if exc.name and (dotted == exc.name or dotted.startswith(exc.name + ".")):
            raise ModelLoadError(
                f"cannot import module '{dotted}': {exc}; install it or check the name (it is "
                "looked for in the current directory and its src/ folder too)"
            ) from exc
        raise import_error(f"'{dotted}'", exc, top) from exc
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit and BaseException subclasses too: user code
        raise import_error(f"'{dotted}'", exc, top) from exc
