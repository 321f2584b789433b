"""Report paths, validated before any work (the writing is in :mod:`gradcheck_cli.atomic`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
