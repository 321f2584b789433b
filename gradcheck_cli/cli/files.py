"""Report files: validated before any work, written atomically."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from gradcheck_cli.errors import ConfigError


def report_target(
    report_path: str | None, formats: Mapping[str, Any], *, any_suffix: bool = False
) -> Path | None:
    """Check a report path (extension, folder) before the model is even loaded."""
    if report_path is None:
        return None
    path = Path(report_path)
    if not any_suffix and path.suffix.lower() not in formats:
        allowed = ", ".join(sorted(formats))
        raise ConfigError(f"--report '{report_path}' must end in one of {allowed}")
    if not path.parent.resolve().is_dir():
        raise ConfigError(f"report '{report_path}': folder '{path.parent}' does not exist")
    return path


def write_atomic(path: Path, write: Callable[[TextIO], None]) -> None:
    """Write to a temporary file beside ``path``, fsync it, and rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, ordinary_file_mode())  # mkstemp makes it private; a report is not
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ordinary_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
