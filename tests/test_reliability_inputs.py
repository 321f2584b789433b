"""Issue 11, input side: every bad input is exit 2 with one line, nothing of the user's is
overwritten, I/O errors are plain messages, --seed seeds every generator, and untrusted names are
escaped. Each test reproduces a failure found by the adversarial review of main."""

from __future__ import annotations

import copy
import errno
import json
import os
import random
import resource
import signal
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from torch import nn

from gradcheck_cli import api
from gradcheck_cli.cli import main
from gradcheck_cli.findings import ExitCode

from .conftest import ROOT

TINY = (
    "from torch import nn\n"
    "def build_model():\n"
    "    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))\n"
)


def run(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), catch_exceptions=False, env=env)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # away from the repository's own pyproject.toml
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.py"
    path.write_text(TINY)
    return path


def usage_error(result: Any, *fragments: str) -> None:
    """Exit 2, one line on stderr naming the cause, nothing on stdout."""
    assert result.exit_code == ExitCode.USAGE_ERROR, (result.exit_code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradcheck: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert result.stdout == ""


# --- item 2: outputs never overwrite inputs -------------------------------------------------


def test_junit_plot_and_summary_never_overwrite_the_model_config_or_source(
    tmp_path: Path, model_file: Path
) -> None:
    config = tmp_path / "gradcheck.yaml"
    config.write_text("steps: 1\n")
    other_source = tmp_path / "victim.py"
    other_source.write_text("print('mine')\n")
    pyproject = tmp_path / "sub" / "pyproject.toml"
    pyproject.parent.mkdir()
    pyproject.write_text("[project]\nname = 'x'\n")
    weights = tmp_path / "w.pt"
    torch.save(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)).state_dict(), weights)
    link = tmp_path / "figure.png"
    link.symlink_to(model_file)
    before = {p: p.read_bytes() for p in (model_file, config, other_source, pyproject, weights)}
    m = str(model_file)
    cases = [
        (("--junit", m), "is the model file"),
        (("--junit", str(config)), "is the config file"),
        (("--report", str(config)), "is the config file"),
        (("--junit", str(other_source)), "ends in .py"),
        (("--junit", str(pyproject)), "ends in .toml"),
        (("--junit", str(weights), "--weights", str(weights)), "is the --weights file"),
        (("--plot", str(link)), "is the model file"),
    ]
    for args, message in cases:
        usage_error(run("diagnose", m, *args), message)
    for target, message in ((m, "is the model file"), (str(other_source), "ends in .py")):
        result = run("diagnose", m, "--format", "github", env={"GITHUB_STEP_SUMMARY": target})
        usage_error(result, "GITHUB_STEP_SUMMARY", message)
    assert {p: p.read_bytes() for p in before} == before
    assert link.is_symlink()


def test_a_zoo_specs_config_file_is_an_input_no_output_replaces(tmp_path: Path) -> None:
    # `hf:Class:cfg.json --report cfg.json` replaced the user's config with the report; --junit
    # with XML; GITHUB_STEP_SUMMARY appended Markdown to it. Refused before transformers loads.
    config = tmp_path / "cfg.json"
    config.write_text('{"n_layer": 2}')
    spec = f"hf:GPT2LMHeadModel:{config}"
    for args in (("--report", str(config)), ("--junit", str(config))):
        usage_error(run("diagnose", spec, *args), "is the zoo spec's config file")
    result = run("diagnose", spec, "--format", "github", env={"GITHUB_STEP_SUMMARY": str(config)})
    usage_error(result, "GITHUB_STEP_SUMMARY", "is the zoo spec's config file")
    assert config.read_text() == '{"n_layer": 2}'


def test_the_step_summary_and_the_report_are_never_one_file(
    tmp_path: Path, model_file: Path
) -> None:
    # The Markdown summary was appended to the YAML report, which then no longer parsed.
    report = tmp_path / "r.yaml"
    result = run(
        "diagnose", str(model_file), "--format", "github", "--report", str(report),
        env={"GITHUB_STEP_SUMMARY": str(report)},
    )  # fmt: skip
    usage_error(result, "GITHUB_STEP_SUMMARY", "is also the --report file")
    assert not report.exists()


def test_data_file_is_protected_from_reports(tmp_path: Path, model_file: Path) -> None:
    data = tmp_path / "batch.yaml"  # a report suffix, but it is the run's --data
    data.write_text("not data")
    usage_error(
        run("diagnose", str(model_file), "--data", str(data), "--report", str(data)),
        "is the --data file",
    )
    assert data.read_text() == "not data"


# --- item 8: I/O errors are one line, exit 2 ---------------------------------------------------


def test_missing_step_summary_folder_is_refused_before_the_run(
    tmp_path: Path, model_file: Path
) -> None:
    summary = tmp_path / "missing" / "summary.md"
    result = run(
        "diagnose", str(model_file), "--format", "github", env={"GITHUB_STEP_SUMMARY": str(summary)}
    )
    usage_error(result, "GITHUB_STEP_SUMMARY", "does not exist")
    assert not summary.parent.exists()


def test_read_only_filesystem_is_a_plain_message_and_the_old_report_stays(
    tmp_path: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = tmp_path / "r.yaml"
    report.write_text("old: report\n")

    def read_only(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    # Running as root, a chmod'ed folder is still writable: fail where the OS would.
    monkeypatch.setattr("gradcheck_cli.atomic.tempfile.mkstemp", read_only)
    result = run("diagnose", str(model_file), "--steps", "1", "--report", str(report), "-q")
    usage_error(result, f"cannot write '{report}'", os.strerror(errno.EROFS))
    assert report.read_text() == "old: report\n"


def _with_file_size_limit(
    args: list[str], cwd: Path, limit: int
) -> subprocess.CompletedProcess[str]:
    """Run gradcheck where no file may grow beyond ``limit`` bytes: the disk is "full"."""

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",  # a truncated .pyc would outlive the test
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "gradcheck_cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        preexec_fn=limited,
        timeout=300,
    )


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file-size limits")
@pytest.mark.slow
def test_full_disk_is_a_plain_message_for_reports_and_saved_fixes(
    tmp_path: Path, model_file: Path
) -> None:
    report = _with_file_size_limit(
        ["diagnose", str(model_file), "--steps", "1", "--report", "r.json", "-q"], tmp_path, 4096
    )
    assert report.returncode == ExitCode.USAGE_ERROR, report.stderr
    assert report.stderr.strip() == "gradcheck: error: cannot write 'r.json': File too large"
    saved = _with_file_size_limit(
        ["fix", str(model_file), "--steps", "1", "--output", "out", "-q", "--format", "json"],
        tmp_path,
        2048,
    )
    # torch's own writer says "unexpected pos 64 vs 0"; the user reads what happened.
    assert saved.returncode == ExitCode.USAGE_ERROR, saved.stderr
    (line,) = saved.stderr.strip().splitlines()
    assert line.startswith("gradcheck: error: cannot write 'out': saving model.pt failed (")
    assert line.endswith("); is the disk full?")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.py"]  # nothing half-written


def test_symlinked_report_on_another_filesystem_is_written_through(
    tmp_path: Path, model_file: Path
) -> None:
    shm = Path("/dev/shm")
    elsewhere = shm if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    target = elsewhere / f"gradcheck-test-{os.getpid()}.yaml"
    target.write_text("old\n")
    link = tmp_path / "report.yaml"
    link.symlink_to(target)
    try:
        result = run("diagnose", str(model_file), "--steps", "1", "--report", str(link), "-q")
        assert result.exit_code == 0, result.stderr
        assert link.is_symlink() and link.resolve() == target.resolve()
        assert yaml.safe_load(target.read_text())["model"]["name"] == str(model_file)
        assert [p.name for p in elsewhere.iterdir() if p.name.startswith(f".{target.name}")] == []
    finally:
        target.unlink(missing_ok=True)


# --- item 12: modes kept, names escaped --------------------------------------------------------


def test_rewriting_a_private_report_keeps_its_mode(tmp_path: Path, model_file: Path) -> None:
    report, junit = tmp_path / "r.yaml", tmp_path / "r.xml"
    for path in (report, junit):
        path.write_text("old\n")
        path.chmod(0o600)
    result = run(
        "diagnose", str(model_file), "--steps", "1", "--report", str(report), "--junit", str(junit)
    )
    assert result.exit_code == 0, result.stderr
    for path in (report, junit):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text() != "old\n"


@pytest.fixture(scope="module")
def report_doc() -> dict[str, Any]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    return api.diagnose(model, torch.randn(8, 8), steps=1).to_dict()


EVIL = "\x1b[2J\x1b]0;pwned\x07\u202eevil\nname"


def test_compare_and_baseline_escape_layer_names_from_a_crafted_report(
    tmp_path: Path, model_file: Path, report_doc: dict[str, Any]
) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(report_doc))
    crafted = copy.deepcopy(report_doc)
    crafted["layers"][0]["name"] = EVIL
    crafted["model"]["name"] = EVIL
    new.write_text(json.dumps(crafted))
    for fmt in ("rich", "github", "markdown"):
        result = run("compare", str(old), str(new), "--format", fmt)
        assert result.exit_code in (0, 1), result.stderr
        assert "\x1b" not in result.stdout and "\x07" not in result.stdout
        assert "\u202e" not in result.stdout
        shown = "\\x1b[2J\\x1b]0;pwned\\x07\\u202eevil\\nname"
        if fmt == "markdown":  # brackets as character references: text, never a link
            shown = shown.replace("[", "&#91;").replace("]", "&#93;")
        assert shown in result.stdout
    junit = run("compare", str(old), str(new), "--format", "junit")
    names = [c.get("name") for c in ET.fromstring(junit.stdout).iter("testcase")]
    assert "\\x1b[2J\\x1b]0;pwned\\x07\u202eevil\nname" in names  # valid XML, text kept
    baseline = run(
        "diagnose", str(model_file), "--steps", "1", "--input-shape", "8", "--baseline", str(new)
    )
    assert baseline.exit_code in (0, 1), baseline.stderr
    assert "\x1b" not in baseline.stdout and "\\x1b[2J" in baseline.stdout


def test_control_characters_in_module_names_keep_junit_valid(tmp_path: Path) -> None:
    model_file = tmp_path / "odd.py"
    model_file.write_text(
        "from collections import OrderedDict\n"
        "from torch import nn\n"
        "def build_model():\n"
        "    layers = []\n"
        "    for i in range(8):\n"
        "        layers += [(f'lin\\x01{i}', nn.Linear(16, 16)), (f'act\\x1b{i}', nn.Sigmoid())]\n"
        "    return nn.Sequential(OrderedDict(layers + [('head', nn.Linear(16, 2))]))\n"
    )
    junit = tmp_path / "out.xml"
    result = run("diagnose", str(model_file), "--steps", "1", "--junit", str(junit), "-q")
    assert result.exit_code == 1, result.stderr  # the sigmoid stack vanishes
    text = ET.parse(junit).getroot().find(".//failure").text  # type: ignore[union-attr]
    assert "lin\\x011" in text and "\x01" not in junit.read_text()
    terminal = run("diagnose", str(model_file), "--steps", "1")
    assert terminal.exit_code == 1
    assert "\x1b" not in terminal.stdout and "\x01" not in terminal.stdout
    assert "lin\\x011" in terminal.stdout and "act\\x1b1" in terminal.stdout


# --- item 6: bad input is exit 2, checked before the run ---------------------------------------


@pytest.mark.parametrize(
    "content,message",
    [
        ('tool = "abc"\n', "'tool' must be a table"),
        ("[[tool]]\nx = 1\n", "'tool' must be a table"),
        ("[tool]\ngradcheck = 3\n", "must be a table of keys"),
    ],
)
def test_pyproject_tool_that_is_not_a_table(
    tmp_path: Path, model_file: Path, content: str, message: str
) -> None:
    (tmp_path / "pyproject.toml").write_text(content)
    usage_error(run("diagnose", str(model_file)), message)


def test_non_utf8_config_and_plan(tmp_path: Path, model_file: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_bytes(b"steps: 2\n# caf\xe9\n")
    usage_error(run("diagnose", str(model_file), "--config", str(config)), "not UTF-8")
    plan = tmp_path / "plan.yaml"
    plan.write_bytes(b"plan_version: 1\nsource: \xff\n")
    usage_error(run("diagnose", str(model_file), "--plan", str(plan)), "not UTF-8")


def test_seed_beyond_what_the_generators_take(tmp_path: Path, model_file: Path) -> None:
    usage_error(run("diagnose", str(model_file), "--seed", str(10**20)), "seed must be")
    usage_error(run("diagnose", str(model_file), "--seed", "-1"), "seed must be")
    (tmp_path / "gradcheck.yaml").write_text(f"seed: {2**64}\n")
    usage_error(run("diagnose", str(model_file)), "seed must be")


@pytest.mark.parametrize(
    "plan,message",
    [
        ("seed: abc", "'seed' must be an integer"),
        ("seed: 1e30", "'seed' must be an integer"),
        ("edits: [{op: residual, target: '', args: [1, 2]}]", "must be a table"),
        ("edits: {op: residual}", "'edits' must be a list"),
        ("remedies: 3", "'remedies' must be a list"),
        (
            "edits: [{op: insert-norm, target: '0', args: {norm: BatchNorm1d, features: -3}}]",
            "'features' must be a whole number from 1",
        ),
        (
            "edits: [{op: insert-norm, target: '0', args: {norm: LayerNorm, features: 1000000000}}]",
            "'features' must be a whole number from 1",
        ),
        (
            "edits: [{op: insert-norm, target: '0', args: {norm: LayerNorm, features: 4096}}]",
            "does not match the layer's 16 outputs",
        ),
        ("edits: [{op: wrap-grad-clip, target: '', args: {max_norm: -1}}]", "'max_norm'"),
        ("edits: [{op: wrap-grad-clip, target: '', args: {max_norm: .nan}}]", "'max_norm'"),
        ("edits: [{op: gate-bias, target: '0'}]", "needs the argument 'steps'"),
        (
            "edits: [{op: init, target: '0', args: {scheme: kaiming_normal, gain: 2}}]",
            "no argument",
        ),
        ("edits: [{op: explode, target: '0'}]", "unknown edit op"),
        ("edits: [{op: [1], target: '0'}]", "'op' must be a string"),
    ],
)
def test_malformed_plan_values(tmp_path: Path, model_file: Path, plan: str, message: str) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(f"plan_version: 1\n{plan}\n")
    usage_error(run("diagnose", str(model_file), "--plan", str(path), "--steps", "1"), message)


@pytest.mark.parametrize(
    "data,message",
    [
        ((1, 2), "inputs is an int, not tensors"),
        ((), "an empty tuple"),
        ({"x": "abc", "y": "d"}, "is a str, not tensors"),
        (torch.tensor(3.0), "0-d tensor"),
        ({0: torch.randn(4, 8)}, "key 0 of inputs is not an argument name"),
        ((torch.randn(4, 8), torch.tensor(1)), "targets must be a tensor with a sample"),
    ],
)
def test_data_files_that_hold_no_batch(
    tmp_path: Path, model_file: Path, data: Any, message: str
) -> None:
    path = tmp_path / "data.pt"
    torch.save(data, path)
    usage_error(run("diagnose", str(model_file), "--data", str(path)), message)


@pytest.mark.parametrize(
    "state,message",
    [
        ((torch.randn(2),), "holds a tuple"),
        ({"a": "b"}, "entry 'a' holds a str"),
        (torch.tensor(1.0), "holds a Tensor"),
        ({1: torch.randn(16, 8)}, "key 1 is not a parameter name"),
    ],
)
def test_weights_files_that_are_not_state_dicts(
    tmp_path: Path, model_file: Path, state: Any, message: str
) -> None:
    path = tmp_path / "weights.pt"
    torch.save(state, path)
    usage_error(run("diagnose", str(model_file), "--weights", str(path)), message)


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda d: d["layers"][0].update(grad_rms="x"), "layers[0].grad_rms"),
        (lambda d: d["layers"][0].update(name=7), "layers[0].name: 7 is not of type 'string'"),
        (lambda d: d.update(findings=[{"id": 3}]), "findings[0]"),
        (lambda d: d.update(layers={"a": 1}), "layers: "),
        (lambda d: d["model"].update(name=None), "model.name"),
        (lambda d: d["layers"].append("x"), "layers[3]"),
    ],
)
def test_baseline_and_compare_documents_with_wrong_types(
    tmp_path: Path, model_file: Path, report_doc: dict[str, Any], mutate: Any, message: str
) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.yaml"
    good.write_text(json.dumps(report_doc))
    doc = copy.deepcopy(report_doc)
    mutate(doc)
    bad.write_text(yaml.safe_dump(doc))
    usage_error(run("compare", str(good), str(bad)), "is not a valid gradcheck report", message)
    usage_error(run("compare", str(bad), str(good)), "is not a valid gradcheck report", message)
    usage_error(
        run("diagnose", str(model_file), "--baseline", str(bad)), "is not a valid gradcheck report"
    )


@pytest.mark.parametrize(
    "body,args,message",
    [
        (
            "    return nn.Sequential(nn.LazyLinear(4), nn.ReLU(), nn.Linear(4, 2))\n",
            ("--input-shape", "8"),
            "lazy module",
        ),
        (
            "    with torch.device('meta'):\n"
            "        return nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))\n",
            (),
            "meta device",
        ),
        (
            "    return nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))\n",
            ("--train-steps", "2", "--optimizer", "sgd", "--lr", "1e308"),
            "--lr 1e+308 is larger than the model's float32",
        ),
        (
            "    return nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))\n",
            ("--train-steps", "2", "--lr", "nan"),
            "lr must be a positive finite number",
        ),
    ],
)
def test_models_that_load_but_cannot_run_as_given(
    tmp_path: Path, body: str, args: tuple[str, ...], message: str
) -> None:
    path = tmp_path / "m.py"
    path.write_text("import torch\nfrom torch import nn\ndef build_model():\n" + body)
    usage_error(run("diagnose", str(path), "--steps", "1", *args), message)


def test_torchscript_with_train_steps(tmp_path: Path) -> None:
    scripted = tmp_path / "m.pt"
    torch.jit.script(nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))).save(str(scripted))
    usage_error(
        run("diagnose", str(scripted), "--input-shape", "8", "--train-steps", "2"),
        "--train-steps cannot train a TorchScript model",
    )


def test_fix_output_on_an_unpicklable_model_fails_before_any_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "local.py"
    path.write_text(
        "from torch import nn\n"
        "def build_model():\n"
        "    class Local(nn.Module):\n"
        "        def __init__(self):\n"
        "            super().__init__()\n"
        "            self.net = nn.Sequential(nn.Linear(8, 8), nn.Sigmoid(), nn.Linear(8, 2))\n"
        "        def forward(self, x):\n"
        "            return self.net(x)\n"
        "    return Local()\n"
    )
    calls: list[Any] = []
    monkeypatch.setattr("gradcheck_cli.api.fix", lambda *a, **k: calls.append(a))
    result = run("fix", str(path), "--output", str(tmp_path / "out"))
    usage_error(result, "fix --output cannot save this model", "Can't pickle local object")
    assert calls == [] and not (tmp_path / "out").exists()
    scripted = tmp_path / "m.pt"
    torch.jit.script(nn.Sequential(nn.Linear(8, 4))).save(str(scripted))
    result = run("fix", str(scripted), "--input-shape", "8", "--output", str(tmp_path / "out"))
    usage_error(result, "cannot save a TorchScript model")
    assert calls == []


# --- item 10: nonsense is refused --------------------------------------------------------------


@pytest.mark.parametrize("shape", ["8x", "x8", "3,,32", "8x-1"])
def test_input_shape_with_an_empty_dimension(model_file: Path, shape: str) -> None:
    usage_error(run("diagnose", str(model_file), "--input-shape", shape), f"'{shape}'")


@pytest.mark.parametrize(
    "threshold,message",
    [
        ("vanishing: {depth-error: .nan}", "must be a finite number, 0 or more, got nan"),
        ("exploding: {magnitude-error: -1}", "must be a finite number, 0 or more, got -1"),
        ("dead-units: {error: .inf}", "must be a finite number"),
        ("vanishing: {min-layers: 2.7}", "min-layers must be a whole number, got 2.7"),
    ],
)
def test_thresholds_nan_negative_or_fractional(
    tmp_path: Path, model_file: Path, threshold: str, message: str
) -> None:
    (tmp_path / "gradcheck.yaml").write_text(f"thresholds:\n  {threshold}\n")
    usage_error(run("diagnose", str(model_file)), message)


def test_regression_factor_must_be_finite(tmp_path: Path, report_doc: dict[str, Any]) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(report_doc))
    usage_error(
        run("compare", str(path), str(path), "--regression-factor", "inf"), "regression-factor"
    )


# --- item 11: --seed seeds Python's random and NumPy -------------------------------------------

RANDOM_MODEL = (
    "import random\n"
    "import numpy as np\n"
    "import torch\n"
    "from torch import nn\n"
    "class Noisy(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.a = nn.Linear(8, 16)\n"
    "        self.b = nn.Linear(16, 2)\n"
    "        with torch.no_grad():\n"
    "            self.a.weight.mul_(random.uniform(0.1, 10) * float(np.random.uniform(0.1, 10)))\n"
    "    def forward(self, x):\n"
    "        scale = random.uniform(0.5, 2) * float(np.random.uniform(0.5, 2))\n"
    "        return self.b(torch.relu(self.a(x * scale)))\n"
    "def build_model():\n"
    "    return Noisy()\n"
)


def test_seed_also_seeds_python_random_and_numpy(tmp_path: Path) -> None:
    path = tmp_path / "noisy.py"
    path.write_text(RANDOM_MODEL)

    def measured(seed: int) -> tuple[Any, Any]:
        result = run("diagnose", str(path), "--seed", str(seed), "--steps", "2", "--format", "json")
        assert result.exit_code in (0, 1), result.stderr
        report = json.loads(result.stdout)
        layer = next(l for l in report["layers"] if l["name"] == "a")
        return layer["weight_norm"], report["run"]["losses"]

    random.seed(1234)
    np.random.seed(1234)
    expected_python, expected_numpy = random.random(), np.random.random()
    random.seed(1234)
    np.random.seed(1234)
    first = measured(3)
    # The caller's generators are where they were: seeding is scoped to gradcheck's work.
    assert (random.random(), np.random.random()) == (expected_python, expected_numpy)
    assert measured(3) == first  # construction and every step repeat
    assert measured(4) != first


# --- the independent adversarial review's findings (issue 11) -------------------------------


def test_a_lazy_model_with_an_inferred_input_is_refused_not_healthy(tmp_path: Path) -> None:
    lazy = tmp_path / "lazy.py"
    lazy.write_text(
        "from torch import nn\ndef build_model():\n    return nn.Sequential(nn.LazyLinear(4))\n"
    )
    usage_error(run("diagnose", str(lazy)), "'0' is a lazy module", "call the model once")


def test_yaml_exponents_without_a_dot_are_numbers(tmp_path: Path, model_file: Path) -> None:
    # YAML 1.1 reads 1e-4 as a string; docs/cli.md writes thresholds that way.
    (tmp_path / "gradcheck.yaml").write_text(
        "thresholds:\n  vanishing:\n    depth-warning: 1e-1\n    depth-error: 1e-4\n"
        "regression-factor: 1e3\n"
    )
    result = run("diagnose", str(model_file), "--format", "json")
    assert result.exit_code == 0, result.stderr


def test_two_outputs_to_one_file_and_absurd_step_counts_are_refused(model_file: Path) -> None:
    usage_error(
        run("diagnose", str(model_file), "--report", "b.yaml", "--junit", "b.yaml"),
        "--junit 'b.yaml' is also the --report file",
    )
    usage_error(
        run("diagnose", str(model_file), "--steps", "99999999999999999999"),
        "steps must be at most 100,000",
    )


def test_gradcheck_alone_names_the_commands_in_one_line() -> None:
    usage_error(run(), "name a command: compare, diagnose, explain, fix, remedies")


def test_markdown_writes_control_characters_in_module_names_out(tmp_path: Path) -> None:
    model = tmp_path / "ctl.py"
    model.write_text(
        "from torch import nn\n"
        "def build_model():\n"
        "    m = nn.Sequential()\n"
        "    m.add_module('evil\\x1b[31m\\u202e', nn.Linear(8, 2))\n"
        "    return m\n"
    )
    result = run("diagnose", str(model), "--format", "markdown")
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout
    # `[` as a character reference: Markdown renders it as "[", never as a link's start.
    assert "evil\\x1b&#91;31m\\u202e" in result.stdout


def test_empty_paths_reversed_thresholds_and_repeated_keywords_are_refused(
    tmp_path: Path, model_file: Path
) -> None:
    usage_error(
        run("diagnose", str(model_file), "--baseline", ""), "--baseline was given an empty path"
    )
    usage_error(run("fix", str(model_file), "--output="), "--output was given an empty path")
    (tmp_path / "gradcheck.yaml").write_text(
        "thresholds:\n  vanishing:\n    depth-warning: 1e-4\n    depth-error: 1e-2\n"
    )
    usage_error(
        run("diagnose", str(model_file)),
        "thresholds.vanishing.depth-warning (0.0001) must be at or above depth-error (0.01)",
    )
    (tmp_path / "gradcheck.yaml").unlink()
    usage_error(
        run("diagnose", f"{model_file}:build_model(width=8, width=9)"),
        "the keyword argument 'width' is repeated",
    )


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (
            "- op: replace-activation\n  target: '0'\n  args: {module: ReLU}\n",
            "'0' is a Linear, not an activation",
        ),
        (
            "- op: insert-norm\n  target: '0'\n  args: {norm: BatchNorm2d, features: 16}\n",
            "a BatchNorm2d does not fit the output of '0', a Linear",
        ),
        (
            "- op: norm-first\n  target: '0'\n",
            "'0' is a Linear, not an nn.TransformerEncoderLayer",
        ),
        (
            "- op: final-norm\n  target: '0'\n  args: {features: 16}\n",
            "'0' is a Linear, not an nn.TransformerEncoder",
        ),
        (
            "- op: temperature-floor\n  target: ''\n  args: {floor: 0}\n",
            "floor",
        ),
        (
            "- op: init\n  target: '0'\n  args: {scheme: sine_hidden, factor: 0}\n",
            "must not be 0",
        ),
    ],
)
def test_plan_edits_that_do_not_fit_the_layer_are_refused(
    tmp_path: Path, model_file: Path, edit: str, fragment: str
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"plan_version: 1\nsource: model.py\nseed: 0\nremedies: []\nedits:\n{edit}")
    usage_error(run("diagnose", str(model_file), "--plan", str(plan)), fragment)


def test_a_float64_model_gets_float64_inputs_and_batch_errors_name_their_source(
    tmp_path: Path, model_file: Path
) -> None:
    double = tmp_path / "double.py"
    double.write_text(
        "from torch import nn\n"
        "def build_model():\n"
        "    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).double()\n"
    )
    result = run("diagnose", str(double), "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["run"]["inputs"] == "inferred 4:float64"
    usage_error(
        run("diagnose", str(model_file), "--input-shape", "100000x100000"),
        "making a batch of 16 from 100000x100000:float32 ran out of memory",
    )


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ("steps: 3\nsteps: 4\n", "invalid YAML at line 2: the key 'steps' is given twice"),
        ("fail-on: error\nfail_on: warning\n", "'fail_on' and 'fail-on' are the same setting"),
        (
            "thresholds:\n  dead-units:\n    warning: 5\n",
            "thresholds.dead-units.warning is a fraction, 0 to 1, got 5",
        ),
        (
            "thresholds:\n  vanishing:\n    min-layers: 0\n",
            "thresholds.vanishing.min-layers must be 2 or more",
        ),
    ],
)
def test_config_keys_twice_and_thresholds_out_of_their_range_are_refused(
    tmp_path: Path, model_file: Path, config: str, fragment: str
) -> None:
    (tmp_path / "gradcheck.yaml").write_text(config)
    usage_error(run("diagnose", str(model_file)), fragment)


# --- issue 25: an interrupt, a learning rate float32 cannot hold, a path given as the model ------


def test_an_interrupt_exits_130_not_the_usage_error_code(
    model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "diagnose", interrupted)
    result = run("diagnose", str(model_file))
    assert result.exit_code == ExitCode.INTERRUPTED == 130
    assert result.stderr.strip() == "gradcheck: interrupted"


@pytest.mark.parametrize(
    ("lr", "message"),
    [
        ("1e-320", "is smaller than the model's float32 parameters can hold (1.17549e-38)"),
        ("1e-39", "--lr 1e-39 is smaller than the model's float32 parameters can hold"),
        ("1e300", "--lr 1e+300 is larger than the model's float32 parameters can hold"),
    ],
)
def test_a_learning_rate_float32_cannot_hold_is_refused(
    model_file: Path, lr: str, message: str
) -> None:
    # 1e-320 is 0 in float32: --train-steps would have trained nothing and said so nowhere.
    result = run("diagnose", str(model_file), "--train-steps", "2", "--lr", lr)
    usage_error(result, message)


def test_a_path_where_the_model_belongs_is_a_type_error_that_says_what_to_pass() -> None:
    for call in (api.diagnose, api.fix):
        with pytest.raises(TypeError, match=r"takes a torch.nn.Module, got str; .*load_model"):
            call("model.py")  # type: ignore[arg-type]
    from gradcheck_cli import watch

    with pytest.raises(TypeError, match=r"watch\(\) takes a torch.nn.Module, got str"):
        with watch("x"):  # type: ignore[arg-type]
            pass


def test_documents_nested_5000_deep_are_bad_input_not_a_crash(
    tmp_path: Path, model_file: Path
) -> None:
    deep_yaml = tmp_path / "deep.yaml"
    deep_yaml.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    usage_error(run("diagnose", str(model_file), "--config", str(deep_yaml)), "nested deeper")
    usage_error(run("diagnose", str(model_file), "--plan", str(deep_yaml)), "nested deeper")
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.gradcheck]\na = " + "[" * 5000 + "]" * 5000)
    os.chdir(project)
    usage_error(run("diagnose", str(model_file)), "pyproject.toml: invalid TOML", "nested deeper")
    # Within the recursion limit but absurd: refused the same way, before anything walks it.
    (tmp_path / "gradcheck.yaml").write_text(
        "a:\n" + "".join("  " * i + "b:\n" for i in range(1, 100)) + "  " * 100 + "c: 1\n"
    )
    os.chdir(tmp_path)
    usage_error(run("diagnose", str(model_file)), "nested deeper than 64 levels")


SURROGATE = (
    "from torch import nn\n"
    "import torch\n"
    "class M(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.add_module('bad\\ud800name', nn.Linear(8, 4))\n"
    "    def forward(self, x):\n"
    "        return getattr(self, 'bad\\ud800name')(x)\n"
    "def build_model():\n"
    "    return M()\n"
)


def test_a_layer_name_with_a_lone_surrogate_is_written_escaped(tmp_path: Path) -> None:
    model = tmp_path / "m.py"
    model.write_text(SURROGATE)
    for fmt in ("rich", "markdown", "github", "yaml"):
        result = run("diagnose", str(model), "--format", fmt)
        assert result.exit_code == ExitCode.OK, (fmt, result.stderr)
    report = tmp_path / "r.md"
    assert run("diagnose", str(model), "--report", str(report)).exit_code == ExitCode.OK
    assert "bad\\ud800name" in report.read_text(encoding="utf-8")


HOSTILE = (
    "from torch import nn\n"
    "import torch\n"
    "NAMES = ['x<img src=x onerror=alert(1)>', 'y`</details>`', 'z|[a](http://e)']\n"
    "class M(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        for n in NAMES:\n"
    "            self.add_module(n, nn.Linear(8, 8))\n"
    "    def forward(self, x):\n"
    "        for n in NAMES:\n"
    "            x = getattr(self, n)(x)\n"
    "        return x\n"
    "def build_model():\n"
    "    return M()\n"
)


def test_markdown_writes_names_as_text_never_as_html_or_structure(tmp_path: Path) -> None:
    # A layer name put <img onerror=...> into the findings table, and a backtick plus
    # </details> closed the report's <details> early (job summaries, PR comments).
    model = tmp_path / "m.py"
    model.write_text(HOSTILE)
    result = run("diagnose", str(model), "--format", "markdown")
    assert result.exit_code in (ExitCode.OK, ExitCode.FINDINGS), result.stderr
    out = result.stdout
    assert "<img" not in out and "&#60;img src=x onerror=alert(1)&#62;" in out
    assert out.count("</details>") == 1 and out.rstrip().endswith("</details>")
    assert "&#96;&#60;/details&#62;&#96;" in out and "[a](http" not in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "Linear" in line]
    assert len(rows) == 3 and all(line.count(" | ") == 5 for line in rows)  # 6 cells each


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("name", ["model.py", "model.pt"])
def test_a_named_pipe_as_the_model_is_called_what_it_is(tmp_path: Path, name: str) -> None:
    # It exists: "does not exist" would send the user looking for a typo.
    os.mkfifo(tmp_path / name)
    done = CliRunner().invoke(main, ["diagnose", str(tmp_path / name)])
    assert done.exit_code == ExitCode.USAGE_ERROR
    assert "is not a regular file (a pipe, socket or device)" in done.output
    assert "does not exist" not in done.output and "Traceback" not in done.output


class _Custom:
    """A Python object pickled into a --data file."""


def test_a_data_file_of_python_objects_is_refused_without_torchs_advice_to_unpickle_it(
    tmp_path: Path,
) -> None:
    torch.save([_Custom(), torch.ones(2, 64)], tmp_path / "batch.pt")
    model = str(ROOT / "sample_models" / "mlp_he.py")
    done = CliRunner().invoke(main, ["diagnose", model, "--data", str(tmp_path / "batch.pt")])
    assert done.exit_code == ExitCode.USAGE_ERROR
    assert "it holds Python objects besides tensors, which --data never unpickles" in done.output
    assert "can still be loaded" not in done.output and "weights_only" not in done.output


@pytest.mark.parametrize("name", ["table.csv", "table.CSV", "header.tsv"])
def test_a_table_as_data_says_it_is_a_table_not_an_unpickling_error(
    tmp_path: Path, name: str
) -> None:
    (tmp_path / name).write_text("a,b,c\n1,2,3\n")
    model = str(ROOT / "sample_models" / "mlp_he.py")
    done = CliRunner().invoke(main, ["diagnose", model, "--data", str(tmp_path / name)])
    assert done.exit_code == ExitCode.USAGE_ERROR
    suffix = name.rpartition(".")[2]
    assert f"(a .{suffix} table, which --data does not parse (save it with numpy.save))" in (
        done.output
    )
    assert "pop from empty list" not in done.output and len(done.output.strip().splitlines()) == 1


def test_a_forward_failure_on_the_users_input_shape_does_not_ask_for_an_input_shape(
    tmp_path: Path,
) -> None:
    (tmp_path / "strict.py").write_text(
        "from torch import nn\n\n\n"
        "class Strict(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.l = nn.Linear(8, 2)\n\n"
        "    def forward(self, x):\n"
        "        raise ValueError(\"expected mode 'train'\")\n\n\n"
        "def build_model():\n"
        "    return Strict()\n"
    )
    done = CliRunner().invoke(main, ["diagnose", str(tmp_path / "strict.py"), "--input-shape", "8"])
    assert done.exit_code == ExitCode.USAGE_ERROR
    line = done.output.strip()
    assert "raised ValueError: expected mode 'train'" in line and "(from --input-shape)" in line
    assert "check those shapes, or fix forward" in line and "pass --input-shape" not in line


def test_fix_writes_through_a_link_to_an_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "empty", target_is_directory=True)
    model = str(ROOT / "sample_models" / "relu_default_init.py")
    done = CliRunner().invoke(main, ["fix", model, "--output", str(tmp_path / "link"), "-q"])
    assert done.exit_code == ExitCode.OK, done.output
    assert (tmp_path / "link").is_symlink()
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == [
        "model.pt", "plan.yaml", "report.yaml", "state_dict.pt",
    ]  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "link"]  # no staging left


@pytest.mark.parametrize("where", ["forward", "build_model"])
@pytest.mark.slow
def test_os_exit_in_the_models_code_fails_the_run_instead_of_ending_it(
    tmp_path: Path, where: str
) -> None:
    # os._exit(0) skips every handler: without interception the process ends with 0 and no
    # report, which a CI job counts as a pass.
    (tmp_path / "leaves.py").write_text(
        "import os\nfrom torch import nn\n\n\n"
        "class Leaves(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.l = nn.Linear(4, 2)\n\n"
        "    def forward(self, x):\n"
        + ("        os._exit(0)\n" if where == "forward" else "        return self.l(x)\n")
        + "\n\ndef build_model():\n"
        + ("    os._exit(0)\n" if where == "build_model" else "    return Leaves()\n")
    )
    done = subprocess.run(
        [sys.executable, "-m", "gradcheck_cli", "diagnose", "leaves.py", "--input-shape", "4"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == ExitCode.USAGE_ERROR, (done.stdout, done.stderr)
    assert "called os._exit(0)" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_timeout_stops_a_forward_that_never_returns_and_leaves_the_model(tmp_path: Path) -> None:
    (tmp_path / "hangs.py").write_text(
        "from torch import nn\n\n\n"
        "class Hangs(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.l = nn.Linear(4, 2)\n\n"
        "    def forward(self, x):\n"
        "        self.l.weight.data.mul_(2)  # changed in place before it hangs\n"
        "        while True:\n"
        "            pass\n"
    )
    script = (
        "import sys, torch\n"
        "from click.testing import CliRunner\n"
        "from gradcheck_cli.cli import main\n"
        "from gradcheck_cli.loading import load_model\n"
        "done = CliRunner().invoke(main, ['diagnose', 'hangs.py', '--input-shape', '4',"
        " '--timeout', '2'])\n"
        "print(done.exit_code)\n"
        "print(done.output.strip())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
        timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    code, line = done.stdout.splitlines()[:2]
    assert int(code) == ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert line.startswith("gradcheck: error: the run took longer than --timeout 2 s")
    assert "Traceback" not in done.stdout + done.stderr
    bad = CliRunner().invoke(main, ["diagnose", "hangs.py", "--timeout", "-1"])
    assert bad.exit_code == ExitCode.USAGE_ERROR and "--timeout" in bad.output
    # The same deadline around the library: interrupted like Ctrl-C, the weights put back.
    from gradcheck_cli.cli.process import deadline
    from gradcheck_cli.errors import RunTimeout
    from gradcheck_cli.loading import load_model

    model = load_model(str(tmp_path / "hangs.py")).module
    weight = model.l.weight.detach().clone()
    with pytest.raises(RunTimeout), deadline(1.0):
        api.diagnose(model, torch.randn(8, 4), steps=1, learn=0)
    assert torch.equal(model.l.weight, weight)


def test_a_forward_failure_on_the_models_example_input_array_names_that_attribute(
    tmp_path: Path,
) -> None:
    (tmp_path / "declared.py").write_text(
        "import torch\n"
        "from torch import nn\n\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.l = nn.Linear(8, 2)\n"
        "        self.example_input_array = torch.randn(1, 5)  # the model takes 8 features\n\n"
        "    def forward(self, x):\n"
        "        return self.l(x)\n"
    )
    done = CliRunner().invoke(main, ["diagnose", str(tmp_path / "declared.py")])
    assert done.exit_code == ExitCode.USAGE_ERROR
    line = done.output.strip()
    assert len(line.splitlines()) == 1 and "(16x5 and 8x2)" in line
    assert "(shaped like the model's example_input_array): check that attribute" in line
