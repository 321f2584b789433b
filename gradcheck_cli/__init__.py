"""gradcheck: a per-layer verdict on a PyTorch model's gradients, from a few backward passes.

The library API is :func:`diagnose`, :func:`fix` and :func:`apply_plan`; the ``gradcheck``
command is a thin layer over it.
"""

from __future__ import annotations

__version__ = "0.1.0"

from gradcheck_cli.api import diagnose, fix  # noqa: E402
from gradcheck_cli.findings import ExitCode, FailOn, Finding, Report, Severity, Status  # noqa: E402
from gradcheck_cli.fixing import FixResult  # noqa: E402
from gradcheck_cli.remedies.plan import Plan, apply_plan  # noqa: E402
from gradcheck_cli.watch import watch  # noqa: E402

__all__ = [
    "ExitCode",
    "FailOn",
    "Finding",
    "FixResult",
    "Plan",
    "Report",
    "Severity",
    "Status",
    "__version__",
    "apply_plan",
    "diagnose",
    "fix",
    "watch",
]
