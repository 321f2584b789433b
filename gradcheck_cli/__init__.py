"""gradcheck: a per-layer verdict on a PyTorch model's gradients, from a few backward passes.

The library API is :func:`diagnose`; the ``gradcheck`` command is a thin layer over it.
"""

from __future__ import annotations

__version__ = "0.1.0"

from gradcheck_cli.api import diagnose  # noqa: E402
from gradcheck_cli.findings import ExitCode, FailOn, Finding, Report, Severity, Status  # noqa: E402

__all__ = [
    "ExitCode",
    "FailOn",
    "Finding",
    "Report",
    "Severity",
    "Status",
    "__version__",
    "diagnose",
]
