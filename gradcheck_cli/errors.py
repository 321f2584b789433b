"""The user-error family.

Everything the user can get wrong (a missing file, a model that does not build, inputs of the
wrong shape, a bad flag or config) raises a subclass of :class:`UsageError`. The CLI turns any of
them into one line on stderr and exit code 2; a traceback is shown only with ``--debug``.
"""

from __future__ import annotations

from pathlib import Path


class UsageError(Exception):
    """Base of every error caused by the user's input rather than by gradcheck itself.

    The message is one sentence that says what was wrong and what to do about it.
    """


class ModelLoadError(UsageError):
    """The model spec could not be turned into an ``nn.Module``."""


class InputError(UsageError):
    """Example inputs could not be built, or the model rejected them."""


class ModelRunError(UsageError):
    """The model's forward pass, loss or backward pass raised an exception."""


class ConfigError(UsageError):
    """A configuration file or option value is malformed."""


def what_happened(exc: BaseException) -> str:
    """How a message says what the user's code did: ``called sys.exit(0)`` or ``raised
    ValueError: the first line of its message``.

    ``sys.exit()`` in a model file, ``build_model`` or ``forward`` (and a ``BaseException``
    subclass of its own) must not end gradcheck with the model's exit code: it is reported like
    any other error of the user's code.
    """
    if isinstance(exc, HardExit):
        return f"called os._exit({exc.code!r})"
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})"
    lines = str(exc).strip().splitlines()
    return f"raised {type(exc).__name__}: {lines[0] if lines else '(no message)'}"


def first_line(exc: BaseException) -> str:
    """The first line of the exception's message, or its type's name when it has none."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class RunTimeout(KeyboardInterrupt):
    """The run passed ``--timeout``. Raised like Ctrl-C (from a timer signal, between Python
    bytecodes), so the user's code cannot catch it as an ``Exception`` and every ``finally``
    that restores the model runs; the command reports it as bad input (exit 2)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"the run took longer than --timeout {seconds:g} s (a forward pass that never "
            "returns, or a model too large for this machine); the model was left as it was "
            "found: raise --timeout, or use fewer --steps or a smaller --batch-size"
        )


class HardExit(SystemExit):
    """``os._exit(status)`` called by the user's code while gradcheck runs it (see
    :func:`gradcheck_cli.cli.process.no_hard_exit`): raised instead of ending the process, so
    the run ends as the model's failure (exit 2), never with the exit code the model chose."""


def require_file(path: Path, what: str, error: type[UsageError] = UsageError) -> None:
    """Raise ``error`` unless ``path`` is a file: one that is missing and one that is a folder
    (a folder named ``x.pt``) and a pipe or device are told apart. ``what`` names it, e.g.
    ``model file 'x.pt'``."""
    if path.is_dir():
        raise error(f"{what} is a folder, not a file; name the file inside it")
    if not path.exists():
        raise error(f"{what} does not exist; check the path")
    if not path.is_file():
        raise error(
            f"{what} is not a regular file (a pipe, socket or device); save what it holds to a "
            "file and name that"
        )


class OutputError(UsageError):
    """A report, plot or saved fix could not be written (read-only, full disk, missing folder),
    or would overwrite one of the run's inputs."""
