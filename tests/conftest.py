"""Shared fixtures: the sample models folder and the report schema validator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema  # a base dependency (compare validates with it): missing, it must fail, not skip
import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_models"


@pytest.fixture(autouse=True)
def _terminal_independent(monkeypatch: pytest.MonkeyPatch) -> None:
    """The terminal the suite runs in must not change what a test sees: plain text takes its
    width from COLUMNS, colour follows NO_COLOR/FORCE_COLOR. Tests that need them set them."""
    for name in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)


def run_in_new_process(
    *args: str, cwd: Path, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m gradcheck_cli ARGS`` in a fresh interpreter, with this checkout importable."""
    return subprocess.run(
        [sys.executable, "-m", "gradcheck_cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=timeout,
    )


def _validator(resource: str):  # type: ignore[no-untyped-def]
    schema = json.loads(resources.files("gradcheck_cli").joinpath(resource).read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)

    def validate(document: dict[str, Any]) -> None:
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        assert not errors, "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])

    return validate


@pytest.fixture(scope="session")
def validate_report():  # type: ignore[no-untyped-def]
    """A function that validates a report dict against the shipped JSON Schema."""
    return _validator("report/schema.json")


@pytest.fixture(scope="session")
def validate_comparison():  # type: ignore[no-untyped-def]
    """A function that validates a comparison dict against its shipped JSON Schema."""
    return _validator("report/comparison.schema.json")
