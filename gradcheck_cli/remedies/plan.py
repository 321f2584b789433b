"""A remedy plan: the ordered edits that turn the user's model into the fixed one.

``plan.yaml`` is declarative (which module got which edit), so a fix can be adopted without
pickles: build the model from your own code, then ``apply_plan(model, Plan.load("plan.yaml"))``
and load ``state_dict.pt``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from gradcheck_cli.config import MAX_SEED, read_text
from gradcheck_cli.errors import require_file
from gradcheck_cli.loading import copy_model
from gradcheck_cli.remedies.edits import Edit, PlanError
from gradcheck_cli.remedies.ops import apply_edit, parse_edit, renamed
from gradcheck_cli.yaml_files import TooDeep, load_user_yaml

PLAN_VERSION = 1


@dataclass(frozen=True)
class Plan:
    """Edits in the order they are applied; ``seed`` drives any re-initialisation."""

    edits: tuple[Edit, ...]
    remedies: tuple[str, ...] = ()
    source: str = ""
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as written to plan.yaml."""
        return {
            "plan_version": PLAN_VERSION,
            "source": self.source,
            "seed": self.seed,
            "remedies": list(self.remedies),
            "edits": [e.to_dict() for e in self.edits],
        }

    def to_yaml(self) -> str:
        """The plan as YAML."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        """Parse plan data; raises :class:`PlanError` when it is not a plan."""
        version = data.get("plan_version") if isinstance(data, Mapping) else None
        if isinstance(version, bool) or version != PLAN_VERSION:
            raise PlanError(f"not a gradcheck plan (plan_version {PLAN_VERSION} expected)")
        edits = data.get("edits")
        if edits is None:
            edits = []
        if not isinstance(edits, list):
            raise PlanError("a plan's 'edits' must be a list")
        remedies = data.get("remedies")
        if remedies is None:
            remedies = []
        if not isinstance(remedies, list) or not all(isinstance(r, str) for r in remedies):
            raise PlanError("a plan's 'remedies' must be a list of remedy names")
        source = data.get("source", "")
        if not isinstance(source, str):
            raise PlanError(f"a plan's 'source' must be a string, got {source!r:.60}")
        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise PlanError(
                f"a plan's 'seed' must be an integer from 0 to {MAX_SEED}, got {seed!r:.60}"
            )
        return cls(
            edits=tuple(parse_edit(e) for e in edits),
            remedies=tuple(remedies),
            source=source,
            seed=seed,
        )

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        """Read a plan.yaml; raises :class:`PlanError` with the file named."""
        path = Path(path)
        require_file(path, f"plan file '{path}'", PlanError)
        text = read_text(path, PlanError)
        try:
            data = load_user_yaml(text)
        except TooDeep as exc:
            raise PlanError(f"'{path}' is not valid YAML: {exc}") from None
        except yaml.YAMLError as exc:
            raise PlanError(f"'{path}' is not valid YAML") from exc
        try:
            return cls.from_dict(data)
        except PlanError as exc:
            raise PlanError(f"{path}: {exc}") from None

    def rename(self, name: str) -> str:
        """Where module ``name`` of the original model lives in the planned one."""
        for edit in self.edits:
            name = renamed(name, edit)
        return name


def apply_plan(model: nn.Module, plan: Plan, *, inplace: bool = False) -> nn.Module:
    """Apply ``plan`` to ``model`` (a copy unless ``inplace``) and return the result.

    Re-initialised weights come from a generator seeded with ``plan.seed``, so the same plan on
    the same freshly built model gives the same architecture and the same weights.
    """
    result = model if inplace else copy_model(model)
    generator = torch.Generator().manual_seed(plan.seed)
    for edit in plan.edits:
        result = apply_edit(result, edit, generator)
    return result


__all__ = ["Plan", "PlanError", "apply_plan"]
