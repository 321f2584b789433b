"""Machine-readable fix reports: YAML and JSON of ``FixResult.to_dict()``."""

from __future__ import annotations

import json
from typing import TextIO

from torch import nn

from gradcheck_cli.fix_result import FixResult


def render_yaml(
    result: FixResult, out: TextIO, *, color: bool = False, before_model: nn.Module | None = None
) -> None:
    """Write the fix report as YAML (the format of report.yaml)."""
    out.write(result.to_yaml())


def render_json(
    result: FixResult, out: TextIO, *, color: bool = False, before_model: nn.Module | None = None
) -> None:
    """Write the fix report as strict JSON."""
    out.write(json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")
