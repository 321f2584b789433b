"""Machine-readable comparisons: YAML and JSON of ``Comparison.to_dict()``."""

from __future__ import annotations

import json
from typing import TextIO

import yaml

from gradcheck_cli.compare import Comparison
from gradcheck_cli.findings import FailOn


def render_yaml(
    comparison: Comparison, out: TextIO, *, color: bool = False, fail_on: FailOn = FailOn.ERROR
) -> None:
    """Write the comparison as YAML."""
    out.write(yaml.safe_dump(comparison.to_dict(), sort_keys=False, width=100))


def render_json(
    comparison: Comparison, out: TextIO, *, color: bool = False, fail_on: FailOn = FailOn.ERROR
) -> None:
    """Write the comparison as strict JSON."""
    out.write(json.dumps(comparison.to_dict(), indent=2, allow_nan=False) + "\n")
