"""Output paths, validated before any work (the writing is in :mod:`gradcheck_cli.atomic`).

Every file gradcheck writes (``--report``, ``--junit``, ``--plot``, the GitHub step summary) is
checked against the run's inputs first: it may never be the model file (or a zoo spec's config
file), the config, a
``--data``/``--weights``/``--plan`` file, nor any file whose suffix says it is source code, a
project file or a saved model or data set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gradcheck_cli.config import find_config
from gradcheck_cli.errors import ConfigError, ModelLoadError, OutputError
from gradcheck_cli.specs import SpecKind, parse_spec, zoo_files

# Suffixes of files that are never gradcheck's to write: code, project and config files, saved
# models and data sets.
SOURCE_SUFFIXES = frozenset(
    {
        ".py", ".pyi", ".pyw", ".pyx", ".pxd", ".ipynb", ".toml", ".cfg", ".ini", ".lock",
        ".sh", ".bash", ".c", ".cc", ".cpp", ".h", ".hpp", ".cu", ".rs", ".go", ".js", ".ts",
        ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".safetensors", ".bin", ".onnx",
        ".npy", ".npz", ".h5", ".hdf5", ".parquet", ".csv",
    }
)  # fmt: skip


def input_files(
    model_spec: str,
    *,
    config: str | None = None,
    data: str | None = None,
    weights: str | None = None,
    plan: str | None = None,
    cwd: Path | None = None,
) -> dict[str, Path]:
    """The files a run reads, by what they are: none of them may be written."""
    found: dict[str, Path] = zoo_files(model_spec)
    try:
        spec = parse_spec(model_spec)
    except ModelLoadError:
        spec = None  # loading reports it
    if spec is not None and spec.kind in (SpecKind.FILE, SpecKind.SAVED):
        found["the model file"] = spec.path
    config_path = Path(config) if config else find_config(cwd or Path.cwd())
    if config_path is not None:
        found["the config file"] = config_path
    for label, path in (("the --data file", data), ("the --weights file", weights)):
        if path:
            found[label] = Path(path)
    if plan:
        found["the --plan file"] = Path(plan)
    return found


def check_output(label: str, path: Path, inputs: Mapping[str, Path]) -> Path:
    """Refuse to write ``path`` (named ``label`` in messages) over an input or a source file.

    The folder must exist, and a symbolic link is judged by the file it points to.
    """
    for what, source in inputs.items():
        if _same_file(path, source):
            raise OutputError(f"{label} '{path}' is {what}; name another file to write")
    suffix = path.resolve().suffix.lower() if path.is_symlink() else path.suffix.lower()
    if suffix in SOURCE_SUFFIXES or path.suffix.lower() in SOURCE_SUFFIXES:
        raise OutputError(
            f"{label} '{path}' ends in {suffix or path.suffix}, a code, config, model or data "
            "file: gradcheck never writes over such files; name another file"
        )
    if path.exists() and not path.is_file():
        raise OutputError(f"{label} '{path}' is not a regular file")
    folder = path.resolve().parent
    if not folder.is_dir():
        raise OutputError(f"{label} '{path}': folder '{path.parent}' does not exist")
    return path


def check_distinct(outputs: list[tuple[str, Path]]) -> None:
    """Refuse two outputs to one file: the second would silently replace the first."""
    for i, (label, path) in enumerate(outputs):
        for other_label, other in outputs[:i]:
            if _same_file(Path(path), Path(other)):
                raise OutputError(
                    f"{label} '{path}' is also the {other_label} file; give each output its "
                    "own file"
                )


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def report_target(
    report_path: str | None,
    formats: Mapping[str, Any],
    *,
    any_suffix: bool = False,
    inputs: Mapping[str, Path] | None = None,
    label: str = "--report",
) -> Path | None:
    """Check a report path (extension, folder, not an input) before the model is even loaded."""
    if report_path is None:
        return None
    path = Path(report_path)
    if not any_suffix and path.suffix.lower() not in formats:
        allowed = ", ".join(sorted(formats))
        raise ConfigError(f"{label} '{report_path}' must end in one of {allowed}")
    return check_output(label, path, inputs or {})
