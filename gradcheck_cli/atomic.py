"""Writing files atomically: a temporary file or folder beside the target, renamed into place.

Nothing of the user's is ever half-written: a failure leaves the target as it was. The
temporaries are private while being written; renamed into place, a new file gets the ordinary
mode of a new file (or folder) under the user's umask, and a file that existed keeps its mode (a
``chmod 600`` report stays private). A target that is a symbolic link is written through: the
file it points to is replaced (beside itself, so on its own filesystem) and the link stays. An
operating-system error (read-only filesystem, full disk) becomes an :class:`OutputError` naming
the file.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from gradcheck_cli.errors import OutputError


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
    # Through a symlink to the file it names: renaming over the link itself would replace it,
    # and fail when the link and its target live on different filesystems (EXDEV).
    target = path.resolve()
    try:
        mode = stat.S_IMODE(target.stat().st_mode) if target.is_file() else ordinary_mode()
        fd, name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=path.suffix, dir=target.parent
        )
    except OSError as exc:
        raise write_error(path, exc) from exc
    os.close(fd)
    tmp = Path(name)
    try:
        save(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(path, exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_error(path: Path, exc: OSError) -> OutputError:
    """One line for an operating-system error while writing ``path``."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return OutputError(f"cannot write '{path}': {reason}")


def _write_text(tmp: Path, write: Callable[[TextIO], None]) -> None:
    with open(tmp, "w", encoding="utf-8") as handle:
        write(handle)
