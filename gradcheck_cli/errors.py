"""The user-error family.

Everything the user can get wrong (a missing file, a model that does not build, inputs of the
wrong shape, a bad flag or config) raises a subclass of :class:`UsageError`. The CLI turns any of
them into one line on stderr and exit code 2; a traceback is shown only with ``--debug``.
"""

from __future__ import annotations


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
