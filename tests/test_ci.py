"""gradcheck in CI: annotations, JUnit, Markdown, baselines, per-check config, determinism, pytest."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from torch import nn

from gradcheck_cli.checks import CHECKS
from gradcheck_cli.cli import main
from gradcheck_cli.testing import assert_healthy_gradients

from .conftest import SAMPLES, run_in_new_process

SIGMOID = str(SAMPLES / "deep_sigmoid.py")
HEALTHY = str(SAMPLES / "mlp_he.py")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner(env=env).invoke(main, list(args), catch_exceptions=False)


def test_github_annotations_name_the_layer_and_the_file(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    result = run(
        "diagnose", SIGMOID, "--format", "github", env={"GITHUB_STEP_SUMMARY": str(summary)}
    )
    assert result.exit_code == 1
    first, *rest = result.stdout.splitlines()
    assert first.startswith(
        f"::error file={SIGMOID.replace(':', '%3A')},title=gradcheck vanishing in 0::"
    )
    assert "gradients shrink with depth" in first and "[layers: 0, 2, 4" in first
    assert "Remedies: relu-swap, kaiming-init" in first
    assert rest[-1].startswith("::notice title=gradcheck::") and "error (1 error" in rest[-1]
    text = summary.read_text()
    assert text.startswith("## gradcheck: 🔴 error") and "| 🔴 error | `vanishing` |" in text


def test_junit_report_fails_the_right_test_case(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    result = run("diagnose", SIGMOID, "--junit", str(junit), "--format", "yaml")
    assert result.exit_code == 1
    root = ET.parse(junit).getroot()
    suite = root.find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    assert suite.get("tests") == str(len(CHECKS))  # one test case per check
    failed = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["vanishing: Vanishing gradients"]
    failure = failed[0].find("failure")
    assert failure is not None and failure.get("type") == "error"
    assert "layers: 0, 2, 4" in (failure.text or "")


def test_junit_below_fail_on_is_context_not_failure(tmp_path: Path) -> None:
    junit = tmp_path / "r.xml"  # --report by extension
    unused = str(SAMPLES / "unused_branch.py")
    assert run("diagnose", unused, "--report", str(junit), "--format", "yaml").exit_code == 0
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0"
    case = next(c for c in suite.iter("testcase") if c.get("name", "").startswith("no-gradient"))
    assert "never run in forward" in (case.findtext("system-out") or "")
    assert (
        run(
            "diagnose", unused, "--report", str(junit), "--fail-on", "warning", "--format", "yaml"
        ).exit_code
        == 1
    )
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1"


def test_markdown_report_file(tmp_path: Path) -> None:
    md = tmp_path / "summary.md"
    assert run("diagnose", HEALTHY, "--report", str(md), "--format", "json", "-q").exit_code == 0
    text = md.read_text()
    assert text.startswith("## gradcheck: ✅ healthy") and "No findings." in text
    assert text.count("| Linear |") == 21


def _write_models(tmp_path: Path, scale: float = 1e-4) -> tuple[str, str]:
    base = (
        "import torch\nfrom torch import nn\n"
        "def build_model(scale=1.0):\n"
        "    torch.manual_seed(0)\n"
        "    layers = []\n"
        "    for i in range(4):\n"
        "        lin = nn.Linear(32, 32)\n"
        "        nn.init.kaiming_normal_(lin.weight, nonlinearity='relu')\n"
        "        layers += [lin, nn.ReLU()]\n"
        "    layers.append(nn.Linear(32, 4))\n"
        "    model = nn.Sequential(*layers)\n"
        "    with torch.no_grad():\n"
        "        model[4].weight.mul_(scale)\n"
        "    return model\n"
    )
    old = tmp_path / "model_v1.py"
    new = tmp_path / "model_v2.py"
    old.write_text(base)
    # v2 shrinks layer 4 by 1/scale: the gradient reaching layers 0 and 2 drops about as much.
    new.write_text(base.replace("def build_model(scale=1.0)", f"def build_model(scale={scale})"))
    return str(old), str(new)


def test_baseline_catches_a_drop_out_of_the_healthy_band_and_names_the_layer(
    tmp_path: Path, validate_comparison
) -> None:
    # x1e-4 on layer 4: layers 0 and 2 fall from ratio ~2e-2 to ~1e-5 and below, out of the band.
    old, new = _write_models(tmp_path)
    baseline = tmp_path / "baseline.yaml"
    assert run("diagnose", old, "--report", str(baseline), "--format", "yaml", "-q").exit_code == 0
    same = run("diagnose", old, "--baseline", str(baseline), "--format", "github")
    assert same.exit_code == 0 and "no regression" in same.stdout
    changed = run("diagnose", new, "--baseline", str(baseline), "--format", "github")
    assert changed.exit_code == 1
    errors = [line for line in changed.stdout.splitlines() if line.startswith("::error")]
    assert any(
        "gradcheck regression in 0" in line
        and "dropped" in line
        and "away from the healthy" in line
        for line in errors
    )
    assert any("gradcheck regression in 2" in line for line in errors)
    as_yaml = yaml.safe_load(
        run("diagnose", new, "--baseline", str(baseline), "--format", "yaml").stdout
    )
    validate_comparison(as_yaml)
    dropped = {l["name"]: l for l in as_yaml["layers"] if l["change"] == "dropped"}
    assert set(dropped) >= {"0", "2"} and dropped["0"]["factor"] < 2e-3
    assert dropped["0"]["regression"] and dropped["0"]["direction"] == "away from the healthy band"
    assert dropped["0"]["old_grad_to_weight"] > 1e-3 and dropped["0"]["new_grad_to_weight"] < 1e-5
    loose = run(
        "diagnose",
        new,
        "--baseline",
        str(baseline),
        "--regression-factor",
        "1e5",
        "--format",
        "yaml",
    )
    assert loose.exit_code == 0


def test_a_move_inside_the_healthy_band_is_listed_and_does_not_fail(
    tmp_path: Path, validate_comparison
) -> None:
    # x0.01 on layer 4: layers 0 and 2 drop about 100x, from ratio ~2e-2 to ~9e-4, still in the
    # band, and diagnose finds nothing: the move is reported, not a regression.
    old, new = _write_models(tmp_path, scale=0.01)
    baseline = tmp_path / "baseline.yaml"
    assert run("diagnose", old, "--report", str(baseline), "--format", "yaml", "-q").exit_code == 0
    result = run("diagnose", new, "--baseline", str(baseline), "--format", "yaml")
    assert result.exit_code == 0
    data = yaml.safe_load(result.stdout)
    validate_comparison(data)
    moved = {l["name"]: l for l in data["layers"] if l["change"] == "dropped"}
    assert set(moved) == {"0", "2"} and 5e-3 < moved["0"]["factor"] < 0.02
    assert all(l["direction"] == "within the healthy band" for l in moved.values())
    assert not any(l["regression"] or l["improvement"] for l in moved.values())
    assert data["regressed"] is False and data["improvements"] == 0


def test_healthy_band_matches_the_magnitude_thresholds_of_the_rules() -> None:
    from gradcheck_cli.checks.exploding import Exploding
    from gradcheck_cli.checks.vanishing import Vanishing
    from gradcheck_cli.compare import HEALTHY_RATIO, band_distance

    assert HEALTHY_RATIO == (
        Vanishing.Options().magnitude_warning,
        Exploding.Options().magnitude_warning,
    )
    assert band_distance(1e-3) == 0 and band_distance(1e-7) == pytest.approx(2)
    assert band_distance(100.0) == pytest.approx(2) and band_distance(0.0) == math.inf
    assert band_distance(math.nan) == math.inf and band_distance(None) is None


@pytest.fixture(scope="module")
def cured(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The broken deep sigmoid MLP's report, and the report of its fix (the saved model)."""
    where = tmp_path_factory.mktemp("cure")
    before = where / "before.yaml"
    runner = CliRunner()
    assert runner.invoke(main, ["diagnose", SIGMOID, "--report", str(before), "-q"]).exit_code == 1
    fixed = runner.invoke(main, ["fix", SIGMOID, "--output", str(where / "fixed"), "-q"])
    assert fixed.exit_code == 0, fixed.output
    return before, where / "fixed" / "report.yaml"


@pytest.mark.parametrize("fmt", ["rich", "yaml", "json", "github", "markdown", "junit"])
@pytest.mark.slow
def test_compare_of_a_broken_baseline_with_its_fix_passes_and_lists_improvements(
    cured: tuple[Path, Path], fmt: str, validate_comparison
) -> None:
    before, after = cured
    result = run("compare", str(before), str(after), "--format", fmt)
    assert result.exit_code == 0, result.stdout
    out = result.stdout
    if fmt in ("yaml", "json"):
        data = yaml.safe_load(out) if fmt == "yaml" else json.loads(out)
        validate_comparison(data)
        (finding,) = data["findings"]
        assert (finding["id"], finding["old"], finding["new"]) == ("vanishing", "error", None)
        assert finding["change"] == "resolved" and finding["improvement"]
        toward = [l["name"] for l in data["layers"] if l["improvement"]]
        # relu-swap with He init lifts the first layers from ratio ~1e-9 into the band
        assert toward[:3] == ["0", "2", "4"] and not any(l["regression"] for l in data["layers"])
        assert data["regressed"] is False and data["improvements"] == 1 + len(toward)
    elif fmt == "rich":
        assert "NO REGRESSION" in out and "improvement(s)" in out
        assert "resolved" in out and "toward the healthy band" in out and "regression " not in out
    elif fmt == "github":
        assert "::error" not in out
        notice = next(
            l for l in out.splitlines() if l.startswith("::notice title=gradcheck improvements")
        )
        assert (
            "vanishing resolved: error -> gone" in notice
            and "gradient RMS of 0 (Linear) rose" in notice
        )
        assert out.splitlines()[-1].endswith(
            "no regression, "
            + notice.split("%3A ")[1].split("::")[0]
            + " improvement(s) against the baseline"
        )
    elif fmt == "markdown":
        assert out.startswith("## gradcheck baseline: ✅ no regression,")
        assert "| `vanishing` | error | – | resolved: improvement |" in out
        assert "| 0 | rose, toward the healthy band: improvement |" in out
    else:
        suite = ET.fromstring(out).find("testsuite")
        assert suite is not None and suite.get("failures") == "0"
        outs = {c.get("name"): c.findtext("system-out") for c in suite.iter("testcase")}
        assert outs["vanishing"] == "improvement: resolved (error -> gone)"
        assert (outs["0"] or "").startswith("improvement: gradient RMS of 0 (Linear) rose")


@pytest.mark.slow
def test_compare_reports_new_findings_and_renamed_or_removed_layers(
    tmp_path: Path, validate_comparison
) -> None:
    old = tmp_path / "old.yaml"
    new = tmp_path / "new.json"
    run("diagnose", HEALTHY, "--report", str(old), "--format", "yaml", "-q")
    run("diagnose", SIGMOID, "--report", str(new), "--format", "yaml", "-q")
    result = run("compare", str(old), str(new), "--format", "yaml")
    assert result.exit_code == 1
    data = yaml.safe_load(result.stdout)
    validate_comparison(data)
    validate_comparison(json.loads(run("compare", str(old), str(new), "--format", "json").stdout))
    (finding,) = data["findings"]
    assert finding["id"] == "vanishing" and finding["change"] == "new" and finding["regression"]
    changes = {l["change"] for l in data["layers"]}
    assert "removed" in changes  # the 20-layer MLP has more Linear layers than the 10-layer one
    assert run("compare", str(new), str(new)).exit_code == 0
    rich = run("compare", str(old), str(new)).stdout
    assert "REGRESSION" in rich and "vanishing" in rich

    renamed = yaml.safe_load(old.read_text())
    for layer in renamed["layers"]:
        if layer["name"] == "0":
            layer["name"] = "stem"
    (tmp_path / "renamed.yaml").write_text(yaml.safe_dump(renamed))
    result = yaml.safe_load(
        run("compare", str(old), str(tmp_path / "renamed.yaml"), "--format", "yaml").stdout
    )
    validate_comparison(result)
    stem = next(l for l in result["layers"] if l["name"] == "stem")
    assert stem["change"] == "renamed" and stem["old_name"] == "0"
    assert result["regressed"] is False


@pytest.mark.parametrize(
    "content,message", [("nope: [", "not valid"), ("a: 1\n", "not a gradcheck report")]
)
def test_compare_rejects_what_is_not_a_report(tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    result = run("compare", str(bad), str(bad))
    assert result.exit_code == 2 and message in result.stderr


def test_per_check_config_severity_off_and_ignored_layers(tmp_path: Path) -> None:
    dead = str(SAMPLES / "dead_relu.py")
    (tmp_path / "gradcheck.yaml").write_text(
        "checks:\n  no-gradient:\n    severity: off\n  dead-units:\n    severity: warning\n"
    )
    report = yaml.safe_load(run("diagnose", dead, "--format", "yaml").stdout)
    assert [(f["id"], f["severity"]) for f in report["findings"]] == [("dead-units", "warning")]
    (tmp_path / "gradcheck.yaml").write_text("ignore-layers: ['*']\n")
    result = run("diagnose", dead, "--format", "yaml")
    assert result.exit_code == 0 and yaml.safe_load(result.stdout)["findings"] == []
    (tmp_path / "gradcheck.yaml").write_text(
        "checks:\n  dead-units:\n    ignore-layers: ['1', '3', '5', '7', '9']\n"
    )
    report = yaml.safe_load(run("diagnose", dead, "--format", "yaml").stdout)
    dead_finding = next(f for f in report["findings"] if f["id"] == "dead-units")
    assert dead_finding["layers"] == ["11"]
    (tmp_path / "gradcheck.yaml").write_text("checks:\n  dead-units:\n    severity: loud\n")
    bad = run("diagnose", dead)
    assert bad.exit_code == 2 and "must be one of off|info|warning|error" in bad.stderr


@pytest.mark.slow
def test_same_seed_same_report_across_processes(tmp_path: Path) -> None:
    outputs = []
    for _ in range(2):
        done = run_in_new_process(
            "diagnose",
            str(SAMPLES / "resnet_bn.py"),
            "--format",
            "yaml",
            "--seed",
            "3",
            cwd=tmp_path,
        )
        data = yaml.safe_load(done.stdout)
        data["run"].pop("seconds")
        outputs.append(data)
    assert outputs[0] == outputs[1]  # identical to the 4 significant digits reported


def test_assert_healthy_gradients() -> None:
    torch.manual_seed(0)
    healthy = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    report = assert_healthy_gradients(healthy, lambda b: torch.randn(b, 8))
    assert report.status.value == "healthy"
    sick = nn.Sequential(
        *[m for _ in range(10) for m in (nn.Linear(16, 16), nn.Sigmoid())], nn.Linear(16, 2)
    )
    with pytest.raises(AssertionError) as info:
        assert_healthy_gradients(sick, lambda b: torch.randn(b, 16))
    text = str(info.value)
    assert "[error] vanishing: gradients shrink with depth" in text
    assert "remedies: relu-swap" in text and "gradcheck explain vanishing" in text
    assert_healthy_gradients(sick, lambda b: torch.randn(b, 16), fail_on="never")


def test_pytest_plugin_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import torch
        from torch import nn

        def test_ok(gradcheck):
            model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
            gradcheck(model, lambda b: torch.randn(b, 4))

        def test_sick(gradcheck):
            layers = [m for _ in range(10) for m in (nn.Linear(8, 8), nn.Sigmoid())]
            gradcheck(nn.Sequential(*layers, nn.Linear(8, 2)), lambda b: torch.randn(b, 8))
        """
    )
    result = pytester.runpytest()  # the plugin loads through its pytest11 entry point
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*[[]error[]] vanishing*"])


@pytest.mark.parametrize(
    ("config", "fails"),
    [
        ("fail-on: warning\n", True),  # mlp60's dead-units warning now fails
        ("fail-on: warning\nchecks:\n  dead-units:\n    severity: off\n", False),
        ("", False),  # a warning, and the default --fail-on error
    ],
)
@pytest.mark.slow
def test_cli_api_and_pytest_judge_a_model_alike_under_one_project_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str, fails: bool
) -> None:
    # One project: a gradcheck.yaml and the model mlp60.py (dead-units warning at net.71). The
    # CLI, assert_healthy_gradients and the pytest fixture read the same file from the working
    # directory; config=None opts the API out. (Not pytester: its sys.modules snapshot would
    # make torch import its own test operators twice.)
    import os
    import shutil
    import subprocess
    import sys

    from gradcheck_cli.loading import load_model
    from gradcheck_cli.seeding import seeded

    model_file = Path(__file__).parent / "screens" / "models" / "mlp60.py"
    shutil.copy(model_file, tmp_path / "mlp60.py")
    if config:
        (tmp_path / "gradcheck.yaml").write_text(config)
    monkeypatch.chdir(tmp_path)
    cli = CliRunner().invoke(main, ["diagnose", "mlp60.py", "--format", "yaml"])
    assert cli.exit_code == (1 if fails else 0), cli.output
    ids = {f["id"] for f in yaml.safe_load(cli.stdout)["findings"]}
    assert ids == (set() if "severity: off" in config else {"dead-units"})
    with seeded(0):
        model = load_model("mlp60.py").module
    inputs = lambda b: torch.randn(b, 64)  # noqa: E731
    if fails:
        with pytest.raises(AssertionError, match=r"\[warning\] dead-units"):
            assert_healthy_gradients(model, inputs)
    else:
        report = assert_healthy_gradients(model, inputs)
        assert {f.id for f in report.findings} == ids
    opted_out = assert_healthy_gradients(model, inputs, config=None)  # defaults: passes
    assert {f.id for f in opted_out.findings} == {"dead-units"}
    (tmp_path / "test_project.py").write_text(
        "import torch\n"
        "from mlp60 import MLP\n\n\n"
        "def test_model(gradcheck):\n"
        "    torch.manual_seed(0)\n"
        "    gradcheck(MLP(), lambda b: torch.randn(b, 64))\n"
    )
    root = str(Path(__file__).resolve().parent.parent)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_project.py"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{root}"},
    )  # fmt: skip
    assert done.returncode == (1 if fails else 0), done.stdout[-2000:]
    assert ("[warning] dead-units" in done.stdout) is fails
