"""Writing files atomically: a temporary file or folder beside the target, renamed into place.

Nothing of the user's is ever half-written: a failure leaves the target as it was. The
temporaries are private while being written and get the ordinary mode of a new file (or folder)
under the user's umask when they are renamed into place.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO


def ordinary_mode(*, folder: bool = False) -> int:
    """The mode ``open(path, "w")`` (or ``mkdir``) would give under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if folder else 0o666) & ~umask


def write_atomic(path: Path, write: Callable[[TextIO], None]) -> None:
    """Write text through ``write`` into a temporary file beside ``path``, fsync, rename."""
    save_atomic(path, lambda tmp: _write_text(tmp, write))


def save_atomic(path: Path, save: Callable[[Path], None]) -> None:
    """Let ``save`` write a temporary file beside ``path`` (any format), then rename it."""
    fd, name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=path.suffix, dir=path.resolve().parent
    )
    os.close(fd)
    tmp = Path(name)
    try:
        save(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, ordinary_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_text(tmp: Path, write: Callable[[TextIO], None]) -> None:
    with open(tmp, "w", encoding="utf-8") as handle:
        write(handle)
