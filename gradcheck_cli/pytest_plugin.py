"""A small pytest plugin: the ``gradcheck`` fixture is :func:`assert_healthy_gradients`.

Registered through the ``pytest11`` entry point; it imports torch only when a test asks for the
fixture, so installing gradcheck does not slow down unrelated test runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def gradcheck() -> Callable[..., Any]:
    """``gradcheck(model, inputs, fail_on="error", **options)`` asserts healthy gradients."""
    from gradcheck_cli.testing import assert_healthy_gradients

    return assert_healthy_gradients
