"""The CI examples, the GitHub Action and the pre-commit hook are valid YAML and the gradcheck
commands they run work here."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from gradcheck_cli.cli import main

from .conftest import ROOT, SAMPLES

EXAMPLES = ROOT / "examples" / "ci"
ACTION = ROOT / "action.yml"
HOOKS = ROOT / ".pre-commit-hooks.yaml"
# The test venv's bin folder: the `gradcheck` that the action and the hook find on PATH.
BIN = Path(sys.executable).parent
SIGMOID = str(SAMPLES / "deep_sigmoid.py")
HEALTHY = str(SAMPLES / "mlp_he.py")


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


def _action_steps(path: Path) -> list[dict[str, Any]]:
    """The steps of a workflow that use the gradcheck action."""
    doc = yaml.safe_load(path.read_text())
    return [
        step
        for job in doc["jobs"].values()
        for step in job["steps"]
        if re.fullmatch(r"[^/]+/gradcheck@v[\d.]+", step.get("uses", ""))
    ]


def test_github_workflow_is_valid() -> None:
    doc = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    steps = doc["jobs"]["gradients"]["steps"]
    assert steps[0]["uses"].startswith("actions/checkout")
    # The workflow uses the action (which installs the CPU torch) rather than its own pip steps.
    uses = _action_steps(EXAMPLES / "github-actions.yml")
    assert len(uses) == 2
    assert all(set(step["with"]) <= set(_action()["inputs"]) for step in uses)
    assert any(step["with"].get("baseline") == "examples/ci/baseline.yaml" for step in uses)
    # Two uses in one workflow need distinct artifact names (upload-artifact refuses a repeat).
    assert len({step["with"].get("artifact-name", "gradcheck-report") for step in uses}) == 2
    assert "`uses: ./`" in (EXAMPLES / "github-actions.yml").read_text()
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


# --- the GitHub Action (action.yml) ---------------------------------------------------------


def _action() -> dict[str, Any]:
    return yaml.safe_load(ACTION.read_text())


def _step(action: dict[str, Any], key: str, value: str) -> dict[str, Any]:
    (step,) = [s for s in action["runs"]["steps"] if str(s.get(key, "")).startswith(value)]
    return step


def test_action_is_a_composite_with_the_documented_inputs_and_outputs() -> None:
    action = _action()
    assert action["runs"]["using"] == "composite"
    inputs = action["inputs"]
    assert inputs["model"]["required"] is True
    defaults = {name: spec.get("default") for name, spec in inputs.items() if name != "model"}
    assert defaults == {
        "fail-on": "error",
        "baseline": "",
        "args": "",
        "python-version": "3.11",
        "torch-index-url": "https://download.pytorch.org/whl/cpu",
        "torch-version": "2.13.0",
        "requirements": "",
        "report": "gradcheck-report.yaml",
        "artifact-name": "gradcheck-report",
    }
    assert all(spec.get("description") for spec in inputs.values())
    outputs = action["outputs"]
    assert outputs["exit-code"]["value"] == "${{ steps.diagnose.outputs.exit-code }}"
    assert outputs["report"]["value"] == "${{ steps.diagnose.outputs.report }}"


def test_action_scripts_take_inputs_from_env_never_interpolated() -> None:
    action = _action()
    scripts = [s for s in action["runs"]["steps"] if "run" in s]
    assert len(scripts) == 2
    for step in scripts:
        # Injection: an input interpolated into a script is spliced into the shell source.
        assert "${{" not in step["run"], step["name"]
        assert step["shell"] == "bash"
    diagnose = _step(action, "id", "diagnose")
    assert diagnose["env"] == {
        "MODEL": "${{ inputs.model }}",
        "FAIL_ON": "${{ inputs.fail-on }}",
        "BASELINE": "${{ inputs.baseline }}",
        "ARGS": "${{ inputs.args }}",
        "REPORT": "${{ inputs.report }}",
    }
    command = next(line for line in diagnose["run"].splitlines() if "gradcheck diagnose" in line)
    assert 'diagnose --format github --fail-on "$FAIL_ON" --report "$REPORT"' in command
    assert command.strip().endswith('$ARGS -- "$MODEL" || code=$?')  # a model is never a flag
    # Installs: the pinned CPU torch first, gradcheck from the action's checkout, then the
    # model's requirements (_run_install runs this script).
    install = _step(action, "name", "Install")
    assert install["env"] == {
        "TORCH_INDEX_URL": "${{ inputs.torch-index-url }}",
        "TORCH_VERSION": "${{ inputs.torch-version }}",
        "REQUIREMENTS": "${{ inputs.requirements }}",
    }
    setup = _step(action, "uses", "actions/setup-python@")
    assert setup["with"] == {"python-version": "${{ inputs.python-version }}"}
    cache = _step(action, "uses", "actions/cache@")
    assert (
        cache["with"]["path"] == "~/.cache/pip" and "inputs.torch-version" in cache["with"]["key"]
    )
    # The report is uploaded even when gradcheck fails the diagnose step, which comes first.
    upload = _step(action, "uses", "actions/upload-artifact@")
    assert upload["if"] == "always()"
    assert upload["with"]["path"] == "${{ inputs.report }}"
    assert upload["with"]["name"] == "${{ inputs.artifact-name }}"
    steps = action["runs"]["steps"]
    order = [steps.index(s) for s in (setup, cache, install, diagnose, upload)]
    assert order == sorted(order)


def _run_install(tmp_path: Path, **inputs: str) -> list[list[str]]:
    """Run the action's install script with INPUTS (and its defaults) against a stand-in
    ``python`` that records each command; return the commands."""
    action = _action()
    step = _step(action, "name", "Install")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    for var, expression in step["env"].items():
        match = re.fullmatch(r"\$\{\{ inputs\.([\w-]+) \}\}", expression)
        assert match, expression
        name = match.group(1)
        env[var] = inputs.get(name.replace("-", "_"), action["inputs"][name].get("default", ""))
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    log = tmp_path / "commands.jsonl"
    log.unlink(missing_ok=True)
    (fake / "python").write_text(
        "#!/bin/sh\n"
        f'{sys.executable} -c "import json, sys; print(json.dumps(sys.argv[1:]))" "$@" >> {log}\n'
        'case "$*" in *"import torch"*) echo "torch==2.13.0+cpu";; esac\n'
    )
    (fake / "python").chmod(0o755)
    env.update(PATH=f"{fake}{os.pathsep}{env['PATH']}", RUNNER_TEMP=str(tmp_path))
    env["GITHUB_ACTION_PATH"] = str(ROOT)
    script = tmp_path / "install.sh"
    script.write_text(step["run"])
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.slow
def test_action_installs_a_pinned_cpu_torch_then_gradcheck_then_the_models_requirements(
    tmp_path: Path,
) -> None:
    cpu = "https://download.pytorch.org/whl/cpu"
    assert _run_install(tmp_path) == [
        ["-m", "pip", "install", "torch==2.13.0", "--index-url", cpu],
        ["-m", "pip", "install", str(ROOT)],
    ]
    held = str(tmp_path / "gradcheck-torch-constraint.txt")
    commands = _run_install(
        tmp_path, requirements="transformers==4.57.6  ./mypkg *", torch_version=""
    )
    assert commands[0] == ["-m", "pip", "install", "torch", "--index-url", cpu]
    assert commands[-1] == [
        "-m", "pip", "install", "-c", held, "--", "transformers==4.57.6", "./mypkg", "*",
    ]  # fmt: skip
    assert (tmp_path / "gradcheck-torch-constraint.txt").read_text() == "torch==2.13.0+cpu\n"
    (tmp_path / "requirements-ci.txt").write_text("transformers\n")
    commands = _run_install(tmp_path, requirements="requirements-ci.txt", torch_index_url="")
    assert commands[0] == ["-m", "pip", "install", "torch==2.13.0"]
    assert commands[-1] == ["-m", "pip", "install", "-c", held, "-r", "requirements-ci.txt"]


def _workspace(tmp_path: Path) -> Path:
    """A CI workspace: the repository's sample models and examples, reports written apart."""
    work = tmp_path / "workspace"
    work.mkdir()
    for folder in ("sample_models", "examples"):
        (work / folder).symlink_to(ROOT / folder)
    return work


def _environment(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    env["OMP_NUM_THREADS"] = "1"
    env["GITHUB_STEP_SUMMARY"] = str(work.parent / "summary.md")
    env["GITHUB_OUTPUT"] = str(work.parent / "output.txt")
    return env


def _run_action(
    work: Path, **inputs: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Run the action's diagnose script as a composite step does (`shell: bash`), with its env
    resolved from INPUTS and the action's defaults; return the process and the step's outputs."""
    action = _action()
    step = _step(action, "id", "diagnose")
    env = _environment(work)
    output = Path(env["GITHUB_OUTPUT"])
    output.write_text("")
    for var, expression in step["env"].items():
        match = re.fullmatch(r"\$\{\{ inputs\.([\w-]+) \}\}", expression)
        assert match, expression
        name = match.group(1)
        env[var] = inputs.get(name.replace("-", "_"), action["inputs"][name].get("default", ""))
    script = work.parent / "diagnose.sh"
    script.write_text(step["run"])
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        timeout=300,
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    return result, outputs


def _report(path: Path) -> dict[str, Any]:
    report = yaml.safe_load(path.read_text())
    assert {"schema_version", "status", "findings", "layers"} <= set(report), path
    return report


@pytest.mark.slow
def test_action_fails_the_step_on_vanishing_gradients_and_a_baseline_accepts_them(
    tmp_path: Path,
) -> None:
    work = _workspace(tmp_path)
    result, outputs = _run_action(work, model=SIGMOID)
    assert result.returncode == 1, result.stderr
    assert outputs == {"exit-code": "1", "report": "gradcheck-report.yaml"}
    errors = [line for line in result.stdout.splitlines() if line.startswith("::error ")]
    assert errors and all("title=gradcheck vanishing" in line for line in errors)
    report = _report(work / "gradcheck-report.yaml")
    assert report["status"] == "error"
    assert [f["id"] for f in report["findings"]] == ["vanishing"]
    assert (tmp_path / "summary.md").read_text().startswith("## gradcheck")
    # A committed report of the same model as the baseline: its findings are accepted.
    (work / "baseline.yaml").write_text((work / "gradcheck-report.yaml").read_text())
    (work / "gradcheck-report.yaml").unlink()
    result, outputs = _run_action(work, model=SIGMOID, baseline="baseline.yaml")
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert outputs["exit-code"] == "0"
    assert "::notice title=gradcheck baseline::" in result.stdout
    assert _report(work / "gradcheck-report.yaml")["status"] == "error"


@pytest.mark.slow
def test_action_passes_a_healthy_model_and_fails_on_bad_input(tmp_path: Path) -> None:
    work = _workspace(tmp_path)
    result, outputs = _run_action(work, model=HEALTHY, report="out/report.yaml", fail_on="info")
    # --report needs an existing folder; exit 2 is the step's result too
    assert result.returncode == 2, result.stderr
    assert outputs["exit-code"] == "2"
    (work / "out").mkdir()
    result, outputs = _run_action(work, model=HEALTHY, report="out/report.yaml", fail_on="info")
    assert result.returncode == 0, result.stderr
    assert outputs == {"exit-code": "0", "report": "out/report.yaml"}
    assert "::error" not in result.stdout
    assert _report(work / "out" / "report.yaml")["status"] == "healthy"


@pytest.mark.slow
def test_action_runs_the_example_workflow_steps(tmp_path: Path) -> None:
    work = _workspace(tmp_path)
    for step in _action_steps(EXAMPLES / "github-actions.yml"):
        inputs = {k.replace("-", "_"): str(v) for k, v in step["with"].items()}
        result, outputs = _run_action(work, **inputs)
        assert result.returncode == 0, (step["name"], result.stdout, result.stderr)
        assert _report(work / outputs["report"])["status"] == "healthy"
    assert (work / "gradcheck-junit.xml").read_text().lstrip().startswith("<?xml")


@pytest.mark.slow
def test_action_refuses_a_report_path_that_would_add_outputs_and_reads_a_dash_model_as_a_model(
    tmp_path: Path,
) -> None:
    work = _workspace(tmp_path)
    result, outputs = _run_action(work, model=SIGMOID, report="r.yaml\nexit-code=0")
    assert result.returncode == 2 and outputs == {"exit-code": "2"}
    assert "line break" in result.stdout and not (work / "r.yaml").exists()
    result, outputs = _run_action(work, model="--help")
    assert result.returncode == 2 and outputs["exit-code"] == "2"
    assert "cannot use '--help' as a model" in result.stderr


@pytest.mark.slow
def test_action_inputs_are_data_not_shell(tmp_path: Path) -> None:
    work = _workspace(tmp_path)
    result, outputs = _run_action(
        work, model="$(touch pwned).py; touch pwned", args="$(touch pwned) `touch pwned` *"
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert outputs["exit-code"] == "2"
    assert not (work / "pwned").exists() and not (work.parent / "pwned").exists()
    assert "Traceback" not in result.stderr


# --- the pre-commit hook (.pre-commit-hooks.yaml) -------------------------------------------


def _hook() -> dict[str, Any]:
    """The hook the example config uses."""
    config = yaml.safe_load((EXAMPLES / "pre-commit-config.yaml").read_text())
    (used,) = config["repos"][0]["hooks"]
    (hook,) = [h for h in yaml.safe_load(HOOKS.read_text()) if h["id"] == used["id"]]
    return hook


def test_pre_commit_hook_is_valid() -> None:
    # The hook documented first runs the project's own gradcheck (language: system): pre-commit
    # builds no environment, so no torch is downloaded. The other builds its own.
    system, own = yaml.safe_load(HOOKS.read_text())
    for hook, language in ((system, "system"), (own, "python")):
        assert {k: v for k, v in hook.items() if k not in ("description", "name", "id")} == {
            "entry": "gradcheck diagnose",
            "language": language,
            "pass_filenames": False,
            "always_run": False,
            "files": r"\.py$",
        }
        assert "args: [path/to/model.py, --fail-on, warning]" in hook["description"]
        assert re.search(hook["files"], "models/net.py") and not re.search(hook["files"], "a.yaml")
    assert (system["id"], own["id"]) == ("gradcheck-system", "gradcheck")
    assert "download.pytorch.org/whl/cpu" in own["description"]
    config = yaml.safe_load((EXAMPLES / "pre-commit-config.yaml").read_text())
    (repo,) = config["repos"]
    assert repo["repo"].endswith("/gradcheck") and repo["rev"] == "v0.1.0"
    assert [h["id"] for h in repo["hooks"]] == [system["id"]]


def _hook_command(model: str | None = None) -> list[str]:
    """The command pre-commit runs: the hook's entry, then the example config's args (no file
    names: pass_filenames is false); MODEL replaces the example's model spec."""
    config = yaml.safe_load((EXAMPLES / "pre-commit-config.yaml").read_text())
    (hook,) = config["repos"][0]["hooks"]
    args = list(hook["args"])
    if model is not None:
        args[0] = model
    return shlex.split(_hook()["entry"]) + args


@pytest.mark.parametrize(
    ("model", "code"), [(None, 0), ("sample_models/deep_sigmoid.py", 1)], ids=["example", "sigmoid"]
)
@pytest.mark.slow
def test_pre_commit_hook_command(tmp_path: Path, model: str | None, code: int) -> None:
    work = _workspace(tmp_path)
    command = _hook_command(model)
    assert command[:3] == ["gradcheck", "diagnose", model or "sample_models/mlp_he.py"]
    result = subprocess.run(
        command, capture_output=True, text=True, cwd=work, env=_environment(work), timeout=300
    )
    assert result.returncode == code, (command, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    if code:
        assert "vanishing" in result.stdout
