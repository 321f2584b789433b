"""gradcheck: a per-layer verdict on a PyTorch model's gradients, from a few backward passes.

The library API is :func:`diagnose`, :func:`fix` and :func:`apply_plan`; the ``gradcheck``
command is a thin layer over it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gradcheck_cli.version import __version__

if TYPE_CHECKING:
    from gradcheck_cli.api import diagnose, fix
    from gradcheck_cli.findings import ExitCode, FailOn, Finding, Report, Severity, Status
    from gradcheck_cli.fix_result import FixResult
    from gradcheck_cli.remedies.plan import Plan, apply_plan
    from gradcheck_cli.watching import watch

# Imported on first use (PEP 562), so that `gradcheck --help`, `gradcheck explain` and the pytest
# plugin, which import this package, do not import torch (about 2-3 s).
_LAZY = {
    "diagnose": "gradcheck_cli.api",
    "fix": "gradcheck_cli.api",
    "ExitCode": "gradcheck_cli.findings",
    "FailOn": "gradcheck_cli.findings",
    "Finding": "gradcheck_cli.findings",
    "Report": "gradcheck_cli.findings",
    "Severity": "gradcheck_cli.findings",
    "Status": "gradcheck_cli.findings",
    "FixResult": "gradcheck_cli.fix_result",
    "Plan": "gradcheck_cli.remedies.plan",
    "apply_plan": "gradcheck_cli.remedies.plan",
    "watch": "gradcheck_cli.watching",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gradcheck_cli' has no attribute {name!r}")


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
