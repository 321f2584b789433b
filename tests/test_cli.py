"""The command line: exit codes, stdout/stderr separation, formats, report files, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from torch import nn

from gradcheck_cli.cli import main

from .conftest import SAMPLES

SIGMOID = str(SAMPLES / "deep_sigmoid.py")
HEALTHY = str(SAMPLES / "mlp_he.py")
UNUSED = str(SAMPLES / "unused_branch.py")


def run(*args: str, cwd: Path | None = None):
    runner = CliRunner()
    if cwd is not None:
        old = os.getcwd()
        os.chdir(cwd)
    try:
        return runner.invoke(main, list(args), catch_exceptions=False)
    finally:
        if cwd is not None:
            os.chdir(old)


@pytest.fixture(autouse=True)
def _no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Isolate from the repository's own pyproject.toml.
    monkeypatch.chdir(tmp_path)


def test_healthy_model_exits_0_with_yaml_on_stdout(validate_report) -> None:
    result = run("diagnose", HEALTHY, "--format", "yaml")
    assert result.exit_code == 0, result.stderr
    report = yaml.safe_load(result.stdout)
    validate_report(report)
    assert report["status"] == "healthy" and report["findings"] == []
    assert report["run"]["steps"] == 3 and report["run"]["batch_size"] == 16
    assert report["run"]["inputs"] == "inferred 64:float32"
    assert len([l for l in report["layers"] if l["type"] == "Linear"]) == 21


def test_vanishing_model_exits_1_with_json(validate_report) -> None:
    result = run("diagnose", SIGMOID, "--format", "json", "--steps", "2", "--seed", "5")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    validate_report(report)
    assert report["status"] == "error"
    assert [f["id"] for f in report["findings"]] == ["vanishing"]
    assert report["run"]["steps"] == 2 and report["run"]["seed"] == 5
    assert len(report["run"]["losses"]) == 2


@pytest.mark.parametrize("fail_on,code", [("error", 0), ("warning", 1), ("info", 1), ("never", 0)])
def test_fail_on_thresholds(fail_on: str, code: int) -> None:
    result = run("diagnose", UNUSED, "--format", "yaml", "--fail-on", fail_on)
    assert result.exit_code == code
    assert yaml.safe_load(result.stdout)["status"] == "warning"


def test_never_does_not_hide_errors_in_the_report() -> None:
    result = run("diagnose", SIGMOID, "--format", "yaml", "--fail-on", "never")
    assert result.exit_code == 0
    assert yaml.safe_load(result.stdout)["status"] == "error"


def test_rich_output_plain_when_not_a_tty() -> None:
    result = run("diagnose", SIGMOID)
    assert result.exit_code == 1
    out = result.stdout
    assert "\x1b[" not in out  # no colour codes off a terminal
    assert "verdict" in out and "ERROR" in out
    assert "Per-layer gradients" in out
    assert "vanishing" in out and "remedy relu-swap" in out
    assert result.stderr == ""  # not a TTY: no progress bar


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_report_file_written_atomically(tmp_path: Path, suffix: str, validate_report) -> None:
    target = tmp_path / f"report{suffix}"
    result = run("diagnose", SIGMOID, "--report", str(target), "--format", "yaml")
    assert result.exit_code == 1
    text = target.read_text()
    data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    validate_report(data)
    assert data["findings"][0]["id"] == "vanishing"
    assert f"wrote {target}" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temp file left


def test_report_written_for_nan_model(tmp_path: Path) -> None:
    target = tmp_path / "nan.yaml"
    result = run("diagnose", str(SAMPLES / "nan_model.py"), "--report", str(target), "-q")
    assert result.exit_code == 1
    data = yaml.safe_load(target.read_text())
    assert data["findings"][0]["id"] == "nonfinite"
    assert "nan" in data["run"]["losses"]
    assert result.stderr == ""


def test_input_shape_flag_and_loss(tmp_path: Path) -> None:
    model_file = tmp_path / "conv.py"
    model_file.write_text(
        "from torch import nn\n"
        "def build_model():\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))\n"
    )
    result = run(
        "diagnose", str(model_file), "--input-shape", "3x8x8", "--loss", "mse", "--format", "json"
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["run"]["inputs"] == "3x8x8:float32"
    assert report["run"]["loss"] == "mse"
    # Without the flag: 3x32x32 (the guess) does not fit the Linear layer; 3x8x8 does.
    inferred = run("diagnose", str(model_file), "--format", "json")
    assert inferred.exit_code == 0, inferred.stderr
    assert json.loads(inferred.stdout)["run"]["inputs"] == "inferred 3x8x8:float32"


def test_token_inputs_with_range(tmp_path: Path) -> None:
    model_file = tmp_path / "tok.py"
    model_file.write_text(
        "import torch\nfrom torch import nn\n"
        "class M(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.e = nn.Embedding(50, 8); self.f = nn.Linear(8, 50)\n"
        "    def forward(self, x):\n"
        "        return self.f(self.e(x))\n"
    )
    result = run("diagnose", str(model_file), "--input-shape", "12:int64:0-50", "--format", "yaml")
    assert result.exit_code == 0, result.stderr
    report = yaml.safe_load(result.stdout)
    assert report["run"]["inputs"] == "12:int64:0-50"
    assert report["run"]["loss"] == "cross-entropy"


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


BAD_INPUTS = [
    ("missing file", lambda p: ["diagnose", str(p / "nope.py")], "does not exist"),
    (
        "syntax error",
        lambda p: ["diagnose", _write(p, "bad.py", "def build_model(:\n")],
        "syntax error at line 1",
    ),
    ("no model", lambda p: ["diagnose", _write(p, "empty.py", "x = 1\n")], "define build_model()"),
    (
        "import raises",
        lambda p: ["diagnose", _write(p, "boom.py", "raise ValueError('nope')\n")],
        "importing",
    ),
    (
        "forward raises",
        lambda p: [
            "diagnose",
            _write(
                p,
                "fwd.py",
                "from torch import nn\nclass M(nn.Module):\n"
                "    def __init__(self):\n        super().__init__(); self.l = nn.Linear(4, 4)\n"
                "    def forward(self, x):\n        raise RuntimeError('forward is broken')\n"
                "def build_model():\n    return M()\n",
            ),
        ],
        "forward is broken",
    ),
    (
        "wrong input shape",
        lambda p: ["diagnose", HEALTHY, "--input-shape", "13"],
        "shapes cannot be multiplied",
    ),
    (
        "malformed input shape",
        lambda p: ["diagnose", HEALTHY, "--input-shape", "3xa"],
        "--input-shape",
    ),
    (
        "unknown dtype",
        lambda p: ["diagnose", HEALTHY, "--input-shape", "3:float7"],
        "unknown dtype",
    ),
    (
        "bad report suffix",
        lambda p: ["diagnose", HEALTHY, "--report", str(p / "r.txt")],
        "must end in one of .json, .md, .xml, .yaml, .yml",
    ),
    (
        "report folder missing",
        lambda p: ["diagnose", HEALTHY, "--report", str(p / "no" / "r.yaml")],
        "does not exist",
    ),
    (
        "unknown flag value",
        lambda p: ["diagnose", HEALTHY, "--fail-on", "sometimes"],
        "Invalid value",
    ),
    (
        "zero steps",
        lambda p: ["diagnose", HEALTHY, "--steps", "0"],
        "steps must be a positive integer",
    ),
    (
        "missing config",
        lambda p: ["diagnose", HEALTHY, "--config", str(p / "none.yaml")],
        "does not exist",
    ),
    (
        "malformed config",
        lambda p: ["diagnose", HEALTHY, "--config", _write(p, "g.yaml", "steps: [1,\n")],
        "invalid YAML",
    ),
    (
        "unknown config key",
        lambda p: ["diagnose", HEALTHY, "--config", _write(p, "g.yaml", "stepz: 2\n")],
        "unknown key 'stepz'",
    ),
    (
        "unknown threshold",
        lambda p: [
            "diagnose",
            HEALTHY,
            "--config",
            _write(p, "g.yaml", "thresholds:\n  vanishing:\n    deep: 1\n"),
        ],
        "has no threshold 'deep'",
    ),
    ("no such name", lambda p: ["diagnose", HEALTHY + ":nothing"], "no name 'nothing'"),
    (
        "unimportable module",
        lambda p: ["diagnose", "no_such_pkg.models:Net"],
        "cannot import module",
    ),
    (
        "weights missing",
        lambda p: ["diagnose", HEALTHY, "--weights", str(p / "w.pt")],
        "does not exist",
    ),
]


@pytest.mark.parametrize("label,args,message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line(tmp_path: Path, label: str, args, message: str) -> None:
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    result = run(*args(tmp_path))
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    if not label.startswith("unknown flag"):
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("gradcheck: error: ")
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p in before}
    assert after == before  # nothing of the user's is changed


def test_debug_shows_traceback(tmp_path: Path) -> None:
    result = run("diagnose", _write(tmp_path, "boom.py", "raise ValueError('nope')\n"), "--debug")
    assert result.exit_code == 2
    assert "Traceback" in result.stderr


def test_saved_models_pickles_and_weights(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    pickled = tmp_path / "whole.pt"
    torch.save(model, pickled)
    refused = run("diagnose", str(pickled))
    assert refused.exit_code == 2 and "--trust-pickle" in refused.stderr
    trusted = run("diagnose", str(pickled), "--trust-pickle", "--format", "yaml")
    assert trusted.exit_code == 0, trusted.stderr
    assert yaml.safe_load(trusted.stdout)["model"]["type"] == "Sequential"

    state = tmp_path / "state.pt"
    torch.save(model.state_dict(), state)
    only_state = run("diagnose", str(state))
    assert only_state.exit_code == 2 and "--weights" in only_state.stderr

    scripted = tmp_path / "scripted.pt"
    torch.jit.script(model).save(str(scripted))
    no_shape = run("diagnose", str(scripted))
    assert no_shape.exit_code == 2 and "--input-shape" in no_shape.stderr
    ts = run("diagnose", str(scripted), "--input-shape", "6", "--format", "yaml")
    assert ts.exit_code == 0, ts.stderr
    ts_layers = yaml.safe_load(ts.stdout)["layers"]
    assert [l["name"] for l in ts_layers] == ["0", "2"]
    assert ts_layers[0]["grad_rms"]["median"] > 0  # parameter gradients still measured
    assert "TorchScript" in ts_layers[0]["act_rms"]["skipped"]

    code = tmp_path / "arch.py"
    code.write_text(
        "from torch import nn\n"
        "def build_model():\n    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))\n"
    )
    loaded = run("diagnose", str(code), "--weights", str(state), "--format", "yaml")
    assert loaded.exit_code == 0, loaded.stderr
    wrong = nn.Sequential(nn.Linear(6, 9))
    torch.save(wrong.state_dict(), tmp_path / "wrong.pt")
    mismatch = run("diagnose", str(code), "--weights", str(tmp_path / "wrong.pt"))
    assert mismatch.exit_code == 2 and "does not match the model" in mismatch.stderr


def test_config_precedence(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.gradcheck]\nsteps = 2\nfail-on = 'never'\n"
        "[tool.gradcheck.thresholds.vanishing]\ndepth-error = 1e-12\ndepth-warning = 1e-11\n"
        "magnitude-warning = 1e-12\nmagnitude-error = 1e-13\n"
    )
    result = run("diagnose", SIGMOID, "--format", "yaml", cwd=tmp_path)
    report = yaml.safe_load(result.stdout)
    assert result.exit_code == 0
    assert report["run"]["steps"] == 2
    assert report["findings"] == []  # thresholds from the file switched the rule off
    flagged = run(
        "diagnose", SIGMOID, "--format", "yaml", "--steps", "1", "--fail-on", "info", cwd=tmp_path
    )
    assert yaml.safe_load(flagged.stdout)["run"]["steps"] == 1  # flags beat the file
    assert flagged.exit_code == 0
    (tmp_path / "gradcheck.yaml").write_text("steps: 4\n")  # yaml wins over pyproject in a folder
    assert (
        yaml.safe_load(run("diagnose", HEALTHY, "--format", "yaml", cwd=tmp_path).stdout)["run"][
            "steps"
        ]
        == 4
    )


def test_explain_and_version() -> None:
    result = run("explain", "vanishing")
    assert result.exit_code == 0
    assert "Why it matters:" in result.stdout and "Glorot & Bengio 2010" in result.stdout
    assert "thresholds.vanishing.depth-error = 0.001" in result.stdout
    assert run("explain", "nope").exit_code == 2
    assert run("explain", "Vanishing").stdout == result.stdout  # ids are case-insensitive
    version = run("--version")
    assert version.exit_code == 0 and "gradcheck, version 0.1.0" in version.stdout


def test_report_files_get_ordinary_permissions(tmp_path: Path) -> None:
    target = tmp_path / "r.yaml"
    run("diagnose", HEALTHY, "--report", str(target), "-q", "--format", "json")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def _imports_torch(*args: str) -> bool:
    """Whether ``python -X importtime ARGS`` imports torch (the import log is on stderr)."""
    import re
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return re.search(r"\|\s+torch$", done.stderr, re.MULTILINE) is not None


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["diagnose", "--help"],
        ["fix", "--help"],
        ["compare", "--help"],
        ["explain", "vanishing"],
        ["remedies"],
    ],
)
@pytest.mark.slow
def test_help_explain_and_remedies_do_not_import_torch(args: list[str]) -> None:
    # torch takes 2-3 s to import; none of these need it.
    assert not _imports_torch("-m", "gradcheck_cli", *args)


@pytest.mark.slow
def test_the_pytest_plugin_and_the_package_do_not_import_torch() -> None:
    # pytest loads the plugin in every run of every project where gradcheck is installed.
    assert not _imports_torch("-c", "import gradcheck_cli.pytest_plugin, gradcheck_cli")
    # ... and the check is not vacuous: the library API does import it.
    assert _imports_torch("-c", "from gradcheck_cli import diagnose")


def test_explain_lists_every_finding_and_remedy_and_explains_remedies() -> None:
    from gradcheck_cli.checks import CHECKS
    from gradcheck_cli.remedies import AUTOMATIC, REGISTRY, REMEDIES

    listing = run("explain")
    assert listing.exit_code == 0
    starts = {line.split()[0] for line in listing.stdout.splitlines() if line.startswith("  ")}
    assert starts >= set(CHECKS) | set(REMEDIES)
    assert any(l.split()[:2] == ["grad-clip", "*"] for l in listing.stdout.splitlines())
    assert any(l.split()[:2] == ["lower-lr", "Lower"] for l in listing.stdout.splitlines())
    remedy = run("explain", "RELU-Swap")
    assert remedy.exit_code == 0
    assert remedy.stdout.startswith("relu-swap: remedy (applied by `gradcheck fix`)")
    assert "He et al. 2015" in remedy.stdout and "Suggested by: vanishing" in remedy.stdout
    assert run("explain", "bf16").stdout.startswith("bf16: remedy (advice only)")
    # the lazy registry holds exactly the remedies fix applies, each under its own id
    assert set(REGISTRY) == AUTOMATIC and all(cls.id == i for i, cls in REGISTRY.items())


def test_choices_are_case_insensitive(tmp_path: Path) -> None:
    result = run(
        "diagnose", str(SAMPLES / "mlp_he.py"), "--format", "YAML", "--loss", "Cross-Entropy"
    )
    assert result.exit_code == 0
    assert yaml.safe_load(result.stdout)["run"]["loss"] == "cross-entropy"


def test_help_groups_options_in_sections_with_one_default_style() -> None:
    import re

    text = run("diagnose", "--help").stdout
    titles = [l[:-1] for l in text.splitlines() if l and not l.startswith(" ") and l.endswith(":")]
    assert titles == [
        "Model and inputs",
        "Measurement",
        "Training (--train-steps, --learn)",
        "Output",
        "CI and baselines",
        "Other",
    ]

    def section(title: str) -> str:
        return text.split(f"\n{title}:\n", 1)[1].split("\n\n", 1)[0]

    assert "--input-shape" in section("Model and inputs") and "--plan" in section(
        "Model and inputs"
    )
    assert "--steps" in section("Measurement") and "--lr" in section(
        "Training (--train-steps, --learn)"
    )
    assert "--baseline" in section("CI and baselines") and "--report" in section("Output")
    flat = " ".join(text.split())
    assert "[default: 3]" in flat and "[default: rich]" in flat
    assert not re.search(r"default: \(", flat) and "; default" not in flat
    assert (
        "build_model()" in flat and "example_inputs(batch_size)" in flat
    )  # what MODEL must define
    fix = " ".join(run("fix", "--help").stdout.split())
    assert "Remedies (fix): --remedy" in fix and "[default: those the findings suggest]" in fix


def test_the_package_exports_resolve_to_the_api_even_after_its_modules_are_imported() -> None:
    import gradcheck_cli
    import gradcheck_cli.integrations.huggingface  # noqa: F401  imports the watch machinery

    assert inspect_name(gradcheck_cli.watch) == "gradcheck_cli.watching.watch"
    assert inspect_name(gradcheck_cli.diagnose) == "gradcheck_cli.api.diagnose"
    assert all(getattr(gradcheck_cli, name) is not None for name in gradcheck_cli.__all__)
    with pytest.raises(AttributeError):
        _ = gradcheck_cli.nope  # type: ignore[attr-defined]


def inspect_name(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', '?')}"


@pytest.mark.parametrize("command", ["diagnose", "fix"])
@pytest.mark.slow
def test_a_reader_that_stops_reading_leaves_the_verdict_and_no_error(command: str) -> None:
    # `gradcheck diagnose m.py | head -1`: the pipe closes before the report is written.
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "gradcheck_cli", command, str(SAMPLES / "deep_sigmoid.py"), "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "FORCE_COLOR": "1"},  # rich's console, which handles EPIPE itself
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 1, err  # the vanishing error's exit code, not 3 or 2
    assert "error" not in err and "Traceback" not in err
