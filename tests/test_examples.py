"""The CI examples are valid YAML and the gradcheck commands they run work here."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from gradcheck_cli.cli import main

from .conftest import ROOT

EXAMPLES = ROOT / "examples" / "ci"


def _commands(path: Path) -> list[str]:
    doc = yaml.safe_load(path.read_text())
    lines: list[str] = []
    if "jobs" in doc:  # GitHub Actions
        for job in doc["jobs"].values():
            for step in job["steps"]:
                lines += str(step.get("run", "")).splitlines()
    else:  # GitLab CI
        for job in doc.values():
            lines += job.get("script", [])
    return [line.strip() for line in lines if line.strip().startswith("gradcheck ")]


def test_github_workflow_is_valid() -> None:
    doc = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    steps = doc["jobs"]["gradients"]["steps"]
    assert any("download.pytorch.org/whl/cpu" in str(s.get("run", "")) for s in steps)
    assert any(s.get("uses", "").startswith("mikepenz/action-junit-report") for s in steps)
    # YAML 1.1 reads the bare key `on` as True
    assert set(doc.get("on", doc.get(True))) == {"push", "pull_request"}


def test_gitlab_job_is_valid() -> None:
    doc = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())
    assert doc["gradcheck"]["artifacts"]["reports"]["junit"] == "gradcheck-junit.xml"


@pytest.mark.parametrize(
    "command",
    _commands(EXAMPLES / "github-actions.yml") + _commands(EXAMPLES / "gitlab-ci.yml"),
)
def test_example_commands_pass_here(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    summary = tmp_path / "summary.md"
    args = shlex.split(command)[1:]
    # Report files go to a temporary folder, as a CI workspace would hold them.
    for flag in ("--report", "--junit"):
        if flag in args:
            i = args.index(flag) + 1
            args[i] = str(tmp_path / args[i])
    result = CliRunner(env={"GITHUB_STEP_SUMMARY": str(summary)}).invoke(
        main, args, catch_exceptions=False
    )
    assert result.exit_code == 0, (command, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    if "--format github" in command:
        assert result.stdout.splitlines()[-1].startswith("::notice title=gradcheck")
        assert summary.read_text().startswith("## gradcheck")
