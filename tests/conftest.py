"""Shared fixtures: the sample models folder and the report schema validator."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_models"


@pytest.fixture(scope="session")
def validate_report():
    """A function that validates a report dict against the shipped JSON Schema."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(
        resources.files("gradcheck_cli").joinpath("report/schema.json").read_text("utf-8")
    )
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)

    def validate(report: dict[str, Any]) -> None:
        errors = sorted(validator.iter_errors(report), key=lambda e: list(e.path))
        assert not errors, "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])

    return validate
