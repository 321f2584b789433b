"""Reliability and security of loading and running the user's code (issue 11).

Each test reproduces a failure the adversarial review found: code beside a ``.pt`` running
without ``--trust-pickle``, ``sys.exit()`` in the user's code becoming gradcheck's exit code,
the model's prints in machine-readable stdout, model files named like standard modules,
misleading messages, a hang on the model's threads, saved fixes that reload only from where
``fix`` ran, and models too big for the machine.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from torch import nn

from gradcheck_cli import memory
from gradcheck_cli.api import diagnose
from gradcheck_cli.cli import main
from gradcheck_cli.errors import ModelRunError
from gradcheck_cli.findings import ExitCode
from gradcheck_cli.loading import load_model
from gradcheck_cli.specs import spec_relative_to

DEEP = """\
from torch import nn


class Deep(nn.Module):
    def __init__(self):
        super().__init__()
        layers = []
        for _ in range(8):
            layers += [nn.Linear(32, 32), nn.Sigmoid()]
        self.net = nn.Sequential(*layers, nn.Linear(32, 4))

    def forward(self, x):
        return self.net(x)


def build_model():
    return Deep()
"""
MARKER_CODE = "open({marker!r}, 'w').write('imported')\n"


def run_installed(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """``gradcheck ARGS`` in a new process as the console script runs it: unlike ``python -m``,
    which puts the working directory first on ``sys.path`` before gradcheck starts, it adds
    nothing there (``python -P``, or the installed script before Python 3.11)."""
    command = [sys.executable, "-P", "-m", "gradcheck_cli", *args]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        timeout=timeout,
    )


def cli(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def one_error_line(result, fragment: str) -> str:  # type: ignore[no-untyped-def]
    """The run exited 2 with one line on stderr, nothing on stdout, and the line holds
    ``fragment``."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == "" and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("gradcheck: error: "), lines
    assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def clean_imports():  # type: ignore[no-untyped-def]
    """Restore sys.path, sys.meta_path and the set of imported modules after the test."""
    path, meta = list(sys.path), list(sys.meta_path)
    modules = set(sys.modules)
    yield
    sys.path[:] = path
    sys.meta_path[:] = meta
    for name in set(sys.modules) - modules:
        del sys.modules[name]


# --- 1: nothing beside a .pt runs without --trust-pickle -------------------------------------


def _downloaded_folder(folder: Path, marker: Path) -> None:
    """What a downloaded folder can hold: a TorchScript model.pt (loads without any flag), a
    plan.yaml naming a source file beside it, and files named like standard modules that
    gradcheck imports lazily (plistlib for --plot, shlex for --train-steps)."""
    folder.mkdir()
    (folder / "m.py").write_text(DEEP)
    torch.jit.save(torch.jit.script(nn.Sequential(nn.Linear(4, 8), nn.Tanh())), folder / "model.pt")
    (folder / "plan.yaml").write_text("plan_version: 1\nsource: m.py\nedits: []\n")
    for name in ("plistlib", "shlex", "colorsys"):
        (folder / f"{name}.py").write_text(MARKER_CODE.format(marker=str(marker)))


@pytest.mark.parametrize("where", ["inside", "outside"])
@pytest.mark.slow
def test_nothing_beside_a_saved_model_is_imported(tmp_path: Path, where: str) -> None:
    pytest.importorskip("matplotlib")
    folder, marker = tmp_path / "download", tmp_path / "MARKER"
    _downloaded_folder(folder, marker)
    cwd, model = (folder, "model.pt") if where == "inside" else (tmp_path, "download/model.pt")
    done = run_installed(
        "diagnose", model, "--plot", "flow.png", "--input-shape", "4", "--steps", "1", "-q",
        "--format", "json", cwd=cwd,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    assert json.loads(done.stdout)["model"]["parameters"] == 4 * 8 + 8
    assert (cwd / "flow.png").stat().st_size > 0  # plistlib was imported: the standard one
    assert not marker.exists()


@pytest.mark.slow
def test_trusted_pickle_finds_its_source_without_shadowing_anything(tmp_path: Path) -> None:
    # --trust-pickle trusts the pickle and the model file plan.yaml names, not every file in
    # the folder: the folder goes at the end of sys.path, after the standard library.
    folder, marker = tmp_path / "download", tmp_path / "MARKER"
    _downloaded_folder(folder, marker)
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import m, torch; "
        "torch.save(m.build_model(), sys.argv[2])"
    )
    subprocess.run([sys.executable, "-c", script, folder, folder / "model.pt"], check=True)
    assert not marker.exists()
    done = run_installed(
        "diagnose", "download/model.pt", "--trust-pickle", "--plot", "flow.png", "--steps", "1",
        "--train-steps", "2", "-q", "--format", "json", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    assert json.loads(done.stdout)["model"]["type"] == "Deep"
    assert not marker.exists()


def test_a_model_files_folder_goes_last_on_sys_path(tmp_path: Path, clean_imports) -> None:
    (tmp_path / "net.py").write_text(DEEP)
    (tmp_path / "colorsys.py").write_text("raise SystemExit('the wrong colorsys')\n")
    sys.modules.pop("colorsys", None)
    model = load_model(str(tmp_path / "net.py")).module
    assert type(model).__name__ == "Deep" and type(model).__module__ == "net"
    assert sys.path[-1] == str(tmp_path)
    import colorsys  # a later import gets the standard library's, not the file beside the model

    assert Path(colorsys.__file__).parent != tmp_path


# --- 4: sys.exit() and BaseException in the user's code are exit 2 ----------------------------

_EXITS = {
    "import": ("import sys\nsys.exit(0)\n", "importing", "called sys.exit(0)"),
    "build": (
        "import sys\ndef build_model():\n    sys.exit(0)\n",
        "build_model()",
        "called sys.exit(0)",
    ),
    "forward": (
        "import sys, torch\nfrom torch import nn\n"
        "class N(nn.Linear):\n    def forward(self, x):\n        sys.exit('bye')\n"
        "def build_model():\n    return N(4, 2)\n"
        "def example_inputs(batch_size):\n    return torch.randn(batch_size, 4)\n",
        "the model's forward pass",
        "called sys.exit('bye')",
    ),
    "inferred-forward": (
        "import sys\nfrom torch import nn\n"
        "class N(nn.Linear):\n    def forward(self, x):\n        sys.exit(0)\n"
        "def build_model():\n    return N(4, 2)\n",
        "the model's forward pass",
        "called sys.exit(0)",
    ),
    "base-exception": (
        "import torch\nfrom torch import nn\nclass Stop(BaseException):\n    pass\n"
        "class N(nn.Linear):\n    def forward(self, x):\n        raise Stop('halt')\n"
        "def build_model():\n    return N(4, 2)\n"
        "def example_inputs(batch_size):\n    return torch.randn(batch_size, 4)\n",
        "the model's forward pass",
        "raised Stop: halt",
    ),
    "loss": (
        "import sys, torch\nfrom torch import nn\n"
        "def build_model():\n    return nn.Linear(4, 2)\n"
        "def loss_fn(output, inputs):\n    sys.exit(3)\n",
        "loss_fn",
        "called sys.exit(3)",
    ),
    "batches": (
        "import sys\nfrom torch import nn\n"
        "def build_model():\n    return nn.Linear(4, 2)\n"
        "def batches():\n    sys.exit(0)\n    yield\n",
        "batches()",
        "called sys.exit(0)",
    ),
}


@pytest.mark.parametrize("where", list(_EXITS))
def test_sys_exit_in_the_users_code_is_exit_2(tmp_path: Path, where: str) -> None:
    source, context, what = _EXITS[where]
    path = tmp_path / f"exits_{where.replace('-', '_')}.py"
    path.write_text(source)
    line = one_error_line(cli("diagnose", str(path), "--steps", "1", "-q"), what)
    assert context in line


def test_sys_exit_in_forward_is_a_usage_error_in_the_api() -> None:
    class Exits(nn.Linear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            sys.exit(0)

    with pytest.raises(ModelRunError, match=r"forward pass called sys.exit\(0\)"):
        diagnose(Exits(4, 2), torch.randn(2, 4), steps=1)


@pytest.mark.slow
def test_sys_exit_in_the_users_code_is_exit_2_in_a_new_process(tmp_path: Path) -> None:
    (tmp_path / "quits.py").write_text(_EXITS["build"][0])
    done = run_installed("diagnose", "quits.py", "-q", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "gradcheck: error: 'quits.py': build_model() called sys.exit(0) (rerun with --debug "
        "for the traceback)"
    ]


# --- 5: the model's prints go to stderr --------------------------------------------------------

PRINTS = """\
import ctypes, os, subprocess, sys
from torch import nn

libc = ctypes.CDLL(None)
print("print at import")
os.write(1, b"fd1 at import\\n")
libc.printf(b"printf at import\\n")
subprocess.run([sys.executable, "-c", "print('child process')"])


class Talks(nn.Linear):
    def forward(self, x):
        print("print in forward")
        os.write(1, b"fd1 in forward\\n")
        libc.printf(b"printf in forward\\n")
        return super().forward(x)


def build_model():
    sys.stdout.write("write in build\\n")
    return Talks(4, 2)
"""


@pytest.mark.parametrize("fmt", ["json", "yaml"])
@pytest.mark.slow
def test_the_models_prints_go_to_stderr(tmp_path: Path, fmt: str) -> None:
    if sys.platform == "win32":
        pytest.skip("libc printf")
    (tmp_path / "talks.py").write_text(PRINTS)
    done = run_installed("diagnose", "talks.py", "--steps", "1", "--format", fmt, cwd=tmp_path)
    assert done.returncode in (0, 1), done.stderr
    if fmt == "json":
        report = json.loads(done.stdout)
    else:
        import yaml

        report = yaml.safe_load(done.stdout)
    assert report["model"]["type"] == "Talks"
    for text in (
        "print at import", "fd1 at import", "printf at import", "child process",
        "write in build", "print in forward", "fd1 in forward", "printf in forward",
    ):  # fmt: skip
        assert text in done.stderr
        assert text not in done.stdout


def test_fix_keeps_the_models_prints_out_of_its_report(tmp_path: Path) -> None:
    (tmp_path / "talks.py").write_text(PRINTS)
    result = cli("fix", str(tmp_path / "talks.py"), "--steps", "1", "--format", "json", "-q")
    assert result.exit_code in (0, 1), result.stderr
    assert json.loads(result.stdout)["before"]["model"]["type"] == "Talks"
    assert "print in forward" in result.stderr and "write in build" in result.stderr


# --- 7: model files named like standard modules ------------------------------------------------


@pytest.mark.parametrize("name", ["json", "typing", "collections"])
def test_a_model_file_named_like_a_standard_module_replaces_nothing(
    tmp_path: Path, name: str, clean_imports
) -> None:
    standard = sys.modules[name]
    model = load_model(str(tmp_path / _write(tmp_path, f"{name}.py", DEEP))).module
    assert type(model).__module__ == f"_gradcheck_model_{name}"
    assert sys.modules[name] is standard
    assert sys.path.index(str(tmp_path)) == len(sys.path) - 1  # last: shadows nothing


def test_a_standard_module_imported_later_is_still_the_standard_one(
    tmp_path: Path, clean_imports
) -> None:
    sys.modules.pop("colorsys", None)
    _write(tmp_path, "colorsys.py", DEEP)
    assert type(load_model(str(tmp_path / "colorsys.py")).module).__name__ == "Deep"
    import colorsys

    assert hasattr(colorsys, "rgb_to_hsv") and Path(colorsys.__file__).parent != tmp_path


@pytest.mark.slow
def test_fix_output_of_a_model_file_named_typing_reloads(tmp_path: Path) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    _write(project, "typing.py", DEEP)
    fixed = run_installed(
        "fix", "typing.py", "--output", "../fixed", "--steps", "1", "-q", "--format", "json",
        cwd=project,
    )  # fmt: skip
    assert fixed.returncode in (0, 1), fixed.stderr
    assert json.loads(fixed.stdout)["chosen"], "a remedy must be applied for model.pt to differ"
    again = run_installed(
        "diagnose", "../fixed/model.pt", "--trust-pickle", "--steps", "1", "-q", "--format",
        "json", cwd=elsewhere,
    )  # fmt: skip
    assert again.returncode in (0, 1), again.stderr
    report = json.loads(again.stdout)
    assert report["model"]["type"] == "Deep"
    assert report["model"]["parameters"] == 8 * (32 * 32 + 32) + 32 * 4 + 4


def _write(folder: Path, name: str, text: str) -> str:
    (folder / name).write_text(text)
    return name


# --- 9: messages that said the wrong thing -----------------------------------------------------


def _garbage(path: Path, size: int = 300) -> Path:
    path.write_bytes(random.Random(11).randbytes(size))
    return path


def test_a_folder_named_like_a_model_file_is_called_a_folder(tmp_path: Path) -> None:
    (tmp_path / "x.pt").mkdir()
    (tmp_path / "y.py").mkdir()
    one_error_line(cli("diagnose", str(tmp_path / "x.pt")), "x.pt' is a folder, not a file")
    one_error_line(cli("diagnose", str(tmp_path / "y.py")), "is a folder, not a file")
    one_error_line(cli("diagnose", str(tmp_path / "z.pt")), "z.pt' does not exist")


def test_an_empty_or_damaged_pt_is_not_told_to_pass_trust_pickle(tmp_path: Path) -> None:
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save(nn.Linear(2, 2), tmp_path / "whole.pt")
    data = (tmp_path / "whole.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    _garbage(tmp_path / "noise.pt")
    with zipfile.ZipFile(tmp_path / "other.pt", "w") as archive:
        archive.writestr("readme.txt", "not a model")
    line = one_error_line(cli("diagnose", str(tmp_path / "empty.pt")), "is empty (0 bytes)")
    assert "--trust-pickle" not in line
    for name in ("truncated.pt", "noise.pt", "other.pt"):
        for flags in ((), ("--trust-pickle",)):
            line = one_error_line(
                cli("diagnose", str(tmp_path / name), *flags),
                f"'{tmp_path / name}' is not a PyTorch file, or it is damaged",
            )
            assert "trust" not in line and "weights_only" not in line
    # A real pickle of code is still refused, with the flag named.
    one_error_line(
        cli("diagnose", str(tmp_path / "whole.pt")), "pass --trust-pickle if you trust this file"
    )


def test_nul_bytes_are_not_a_syntax_error_at_line_none(tmp_path: Path) -> None:
    (tmp_path / "nul.py").write_bytes(b"import torch\x00\n")
    line = one_error_line(
        cli("diagnose", str(tmp_path / "nul.py")),
        "is not Python source (source code string cannot contain null bytes)",
    )
    assert "line None" not in line


def test_a_garbage_npz_is_not_advised_to_be_loaded_unsafely(tmp_path: Path) -> None:
    (tmp_path / "lin.py").write_text("from torch import nn\nmodel = nn.Linear(4, 2)\n")
    for name in ("noise.npz", "noise.npy"):
        line = one_error_line(
            cli("diagnose", str(tmp_path / "lin.py"), "--data", str(_garbage(tmp_path / name))),
            f"cannot read data file '{tmp_path / name}' (it is not a NumPy array file",
        )
        assert "allow_pickle" not in line and "unsafe" not in line and "pickle.load" not in line


@pytest.mark.parametrize("kind", ["pt", "npz"])
def test_data_with_no_rows_is_blamed_on_the_data(tmp_path: Path, kind: str) -> None:
    (tmp_path / "lin.py").write_text("from torch import nn\nmodel = nn.Linear(4, 2)\n")
    if kind == "pt":
        data = tmp_path / "empty.pt"
        torch.save((torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)), data)
    else:
        data = tmp_path / "empty.npz"
        np.savez(data, x=np.zeros((0, 4), np.float32), y=np.zeros(0, np.int64))
    one_error_line(
        cli("diagnose", str(tmp_path / "lin.py"), "--data", str(data)),
        f"--data '{data}' holds 0 rows; give at least one sample",
    )


_FAILING_FORWARD = """\
import torch
from torch import nn


class Fails(nn.Linear):
    def forward(self, x):
        raise {error}


def build_model():
    return Fails(4, 2)
{inputs}"""
_EXAMPLE = "\n\ndef example_inputs(batch_size):\n    return torch.randn(batch_size, 4)\n"


@pytest.mark.parametrize(
    "error,inputs,expected,advice",
    [
        (
            "torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 20.00 GiB')",
            _EXAMPLE,
            "ran out of memory (raised OutOfMemoryError: CUDA out of memory. Tried to allocate "
            "20.00 GiB)",
            "use a smaller --batch-size",
        ),
        (
            "RuntimeError('[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: "
            "can\\'t allocate memory: you tried to allocate 1000000000 bytes.')",
            "",
            "ran out of memory (raised RuntimeError: [enforce fail",
            "use a smaller --batch-size",
        ),
        (
            "ValueError('the mask must be boolean')",
            _EXAMPLE,
            "raised ValueError: the mask must be boolean; the inputs were a float32 tensor",
            "fix forward or the inputs",
        ),
    ],
)
def test_forward_errors_give_advice_that_fits_them(
    tmp_path: Path, error: str, inputs: str, expected: str, advice: str
) -> None:
    path = tmp_path / "fails.py"
    path.write_text(_FAILING_FORWARD.format(error=error, inputs=inputs))
    line = one_error_line(cli("diagnose", str(path), "--steps", "1"), expected)
    assert advice in line
    assert "--input-shape" not in line


def test_forward_errors_on_the_users_input_shape_ask_to_check_it(tmp_path: Path) -> None:
    # The shapes came from --input-shape: "pass --input-shape" would be no advice at all.
    path = tmp_path / "fails.py"
    path.write_text(_FAILING_FORWARD.format(error="RuntimeError('bad shape')", inputs=""))
    one_error_line(
        cli("diagnose", str(path), "--steps", "1", "--input-shape", "4"),
        "the model's forward pass raised RuntimeError: bad shape; the inputs were a float32 "
        "tensor of shape (16, 4) (from --input-shape): check those shapes, or fix forward "
        "(rerun with --debug for the traceback)",
    )


# --- 14: a thread the model leaves running does not hang gradcheck -----------------------------


@pytest.mark.slow
def test_a_thread_left_running_does_not_hang_after_the_report(tmp_path: Path) -> None:
    (tmp_path / "threads.py").write_text(
        "import threading, time\nfrom torch import nn\n"
        "def build_model():\n"
        "    threading.Thread(target=time.sleep, args=(3600,), name='prefetch').start()\n"
        "    return nn.Linear(4, 2)\n"
    )
    done = run_installed(
        "diagnose", "threads.py", "--steps", "1", "--format", "json", "--report", "r.yaml",
        cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["model"]["type"] == "Linear"
    assert (tmp_path / "r.yaml").read_text(encoding="utf-8").startswith("schema_version: 1")
    assert "not waiting for 1 thread(s) the model left running ('prefetch')" in done.stderr


@pytest.mark.slow
def test_an_error_with_a_thread_left_running_keeps_its_exit_code(tmp_path: Path) -> None:
    (tmp_path / "threads.py").write_text(
        "import threading, time\n"
        "threading.Thread(target=time.sleep, args=(3600,), name='prefetch').start()\n"
        "raise ValueError('no model here')\n"
    )
    done = run_installed("diagnose", "threads.py", cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    assert "raised ValueError: no model here" in done.stderr


# --- 15: plan.yaml's source is relative to the plan ---------------------------------------------


@pytest.mark.slow
def test_a_saved_fix_reloads_from_any_folder(tmp_path: Path) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "models").mkdir(parents=True)
    (project / "out").mkdir()
    elsewhere.mkdir()
    _write(project / "models", "deep.py", DEEP)
    fixed = run_installed(
        "fix", "models/deep.py:Deep", "--output", "out/fixed", "--steps", "1", "-q",
        cwd=project,
    )  # fmt: skip
    assert fixed.returncode in (0, 1), fixed.stderr
    plan = (project / "out" / "fixed" / "plan.yaml").read_text(encoding="utf-8")
    assert "source: ../../models/deep.py:Deep\n" in plan
    again = run_installed(
        "diagnose", str(project / "out" / "fixed" / "model.pt"), "--trust-pickle", "--steps",
        "1", "-q", "--format", "json", cwd=elsewhere,
    )  # fmt: skip
    assert again.returncode in (0, 1), again.stderr
    assert json.loads(again.stdout)["model"]["type"] == "Deep"


def test_spec_relative_to(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    assert spec_relative_to("net.py:Net(width=4)", tmp_path / "out") == "../net.py:Net(width=4)"
    assert spec_relative_to("a/net.py", tmp_path / "out") == "../a/net.py"
    assert spec_relative_to("pkg.mod:build", tmp_path / "out") == "pkg.mod:build"
    assert spec_relative_to("", tmp_path / "out") == ""


# --- 16: a model too big for the machine is refused before it is built -------------------------


def test_a_zoo_model_too_big_is_refused_with_its_size(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("transformers")
    monkeypatch.setattr(memory, "free_bytes", lambda: 8 * 2**30)
    line = one_error_line(
        cli("diagnose", "hf:LlamaForCausalLM"),
        "'hf:LlamaForCausalLM' has 6,738,415,616 parameters: 25.1 GiB of weights and 50.2 GiB "
        "with their gradients, but 8.0 GiB is free here; diagnose a smaller configuration",
    )
    assert "hf:CLASS:config.json" in line


def test_a_model_file_whose_build_runs_out_of_memory_is_told_its_size(tmp_path: Path) -> None:
    path = tmp_path / "huge.py"
    path.write_text(
        "import torch\nfrom torch import nn\n\n\ndef build_model():\n"
        "    model = nn.Sequential(*[nn.Linear(1000, 1000) for _ in range(3)])\n"
        "    if torch.empty(0).device.type != 'meta':  # what the allocator says on a real build\n"
        "        raise RuntimeError('[enforce fail at alloc_cpu.cpp:117] data. "
        "DefaultCPUAllocator: can\\'t allocate memory: you tried to allocate 27000000000 bytes.')\n"
        "    return model\n"
    )
    line = one_error_line(
        cli("diagnose", str(path)), "huge.py': the model has 3,003,000 parameters: 0.0 GiB"
    )
    assert "is free here; diagnose a smaller configuration" in line


def test_count_on_meta_allocates_nothing() -> None:
    counted = memory.count_on_meta(lambda: nn.Linear(100_000, 100_000))  # 40 GB in float32
    assert counted == (100_000 * 100_000 + 100_000, 4 * (100_000 * 100_000 + 100_000))
    assert memory.count_on_meta(lambda: torch.load("/nonexistent")) is None
    assert memory.gib(27 * 2**30) == "27.0 GiB"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["diagnose", "--bogus"],
            "gradcheck: error: No such option '--bogus'. Did you mean '--loss'? "
            "(see '{prog} diagnose --help')",
        ),
        (
            ["diagnose"],
            "gradcheck: error: Missing argument 'MODEL'. (see '{prog} diagnose --help')",
        ),
        (
            ["diagnos", "m.py"],
            "gradcheck: error: No such command 'diagnos'. Did you mean 'diagnose'? "
            "(see '{prog} --help')",
        ),
    ],
)
@pytest.mark.slow
def test_a_usage_error_is_one_line(tmp_path: Path, args: list[str], expected: str) -> None:
    done = run_installed(*args, cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    assert done.stdout == ""
    # The program name is how it was started: `gradcheck`, or `python -m gradcheck_cli`.
    prog = "gradcheck" if "see 'gradcheck" in done.stderr else "python -m gradcheck_cli"
    assert done.stderr.splitlines() == [expected.format(prog=prog)]


@pytest.mark.slow
def test_warnings_from_the_model_do_not_pad_a_bad_inputs_one_line(tmp_path: Path) -> None:
    model = tmp_path / "warns.py"
    model.write_text(
        "import warnings\n"
        "import torch\n"
        "def build_model():\n"
        "    warnings.warn('this layer is deprecated', UserWarning)\n"
        "    return torch.nn.Linear(4, 2)\n"
        "def example_inputs(batch_size):\n"
        "    return torch.randn(batch_size, 5)\n",  # the wrong width: a bad input
        encoding="utf-8",
    )
    done = run_installed("diagnose", str(model), cwd=tmp_path, timeout=300)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("gradcheck: error:")
    assert "deprecated" not in done.stderr
    # With --debug, and on a run that completes, the warning is shown.
    debug = run_installed("diagnose", str(model), "--debug", cwd=tmp_path, timeout=300)
    assert "UserWarning: this layer is deprecated" in debug.stderr
    model.write_text(
        model.read_text(encoding="utf-8").replace("(batch_size, 5)", "(batch_size, 4)")
    )
    fine = run_installed("diagnose", str(model), "--format", "json", cwd=tmp_path, timeout=300)
    assert fine.returncode == 0, fine.stderr
    assert "UserWarning: this layer is deprecated" in fine.stderr


@pytest.mark.slow
def test_what_the_model_prints_after_the_report_never_reaches_stdout(tmp_path: Path) -> None:
    model = tmp_path / "late.py"
    model.write_text(
        "import atexit, os, threading, time\n"
        "import torch\n"
        "atexit.register(print, 'ATEXIT')\n"
        "atexit.register(os.write, 1, b'ATEXIT-FD1\\n')\n"
        "def chatter():\n"
        "    while True:\n"
        "        print('THREAD'); time.sleep(0.0005)\n"
        "def build_model():\n"
        "    threading.Thread(target=chatter, daemon=True).start()\n"
        "    return torch.nn.Sequential(torch.nn.Linear(8, 4))\n",
        encoding="utf-8",
    )
    for _ in range(3):
        done = run_installed("diagnose", str(model), "--format", "json", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["model"]["type"] == "Sequential"
        assert "ATEXIT" in done.stderr and "ATEXIT-FD1" in done.stderr


def test_data_targets_out_of_range_and_mistyped_hf_configs_are_exit_2(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    model = tmp_path / "tiny.py"
    model.write_text(
        "import torch\ndef build_model():\n    return torch.nn.Linear(8, 4)\n", encoding="utf-8"
    )
    data = tmp_path / "d.npz"
    np.savez(data, x=np.random.randn(32, 8).astype("float32"), y=np.full(32, 150))
    result = cli("diagnose", str(model), "--data", str(data))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "gradcheck: error: the --data targets must be class indices in [0, 4) for an output of "
        "4 classes (or -100 to ignore a position), but they run from 150 to 150"
    ]
    pytest.importorskip("transformers")
    config = tmp_path / "fl.json"
    config.write_text('{"n_layer": 2.5}', encoding="utf-8")
    result = cli("diagnose", f"hf:GPT2LMHeadModel:{config}")
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    head = f"gradcheck: error: 'hf:GPT2LMHeadModel:{config}': "
    if line.startswith(head + "building GPT2LMHeadModel from its config failed: "):
        return  # an older transformers does not check the config's types: the build fails
    assert line.startswith(f"{head}'{config}' is not a")
    assert "n_layer" in line


@pytest.mark.slow
def test_a_fix_that_keeps_the_original_still_reloads_from_any_folder(tmp_path: Path) -> None:
    model = tmp_path / "models" / "net.py"
    model.parent.mkdir()
    model.write_text(
        "import torch\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.a = torch.nn.Linear(8, 8); self.b = torch.nn.Linear(8, 2)\n"
        "    def forward(self, x):\n"
        "        return self.b(torch.relu(self.a(x)))\n"
        "def build_model():\n"
        "    return Net()\n",
        encoding="utf-8",
    )
    out = tmp_path / "out" / "fixed"
    out.parent.mkdir()
    # A healthy model: nothing to apply, the original is saved with an empty plan.
    done = run_installed(
        "fix", str(model), "--remedy", "grad-clip", "--output", str(out), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    plan = yaml.safe_load((out / "plan.yaml").read_text(encoding="utf-8"))
    assert plan["edits"] == [] and plan["source"] == "../../models/net.py"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = run_installed(
        "diagnose", str(out / "model.pt"), "--trust-pickle", "--format", "json", cwd=elsewhere
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["model"]["type"] == "Net"


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("os:system('touch X')", "system is not a Python function"),
        ('builtins:exec(\'open("X", "w")\')', "exec is not a Python function"),
        ("os:popen('touch X')", "popen is a function of Python's standard library (os)"),
        ("subprocess:run(['touch', 'X'])", "run is a function of Python's standard library"),
        ("subprocess:Popen(['touch', 'X'])", "Popen is a class that is not an nn.Module"),
    ],
)
def test_a_spec_never_calls_a_builtin_or_the_standard_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: str, why: str
) -> None:
    # `package.module:NAME(args)` called any importable callable before it said the result
    # was not a module: os:system('touch X') ran.
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["diagnose", spec], catch_exceptions=False)
    assert result.exit_code == ExitCode.USAGE_ERROR
    assert why in result.stderr and "name an nn.Module class or a function" in result.stderr
    assert not (tmp_path / "X").exists()


def test_a_partial_of_a_module_class_in_a_file_still_builds(tmp_path: Path) -> None:
    model = tmp_path / "m.py"
    model.write_text(
        "import functools\nfrom torch import nn\nbuild = functools.partial(nn.Linear, 8)\n"
    )
    result = CliRunner().invoke(main, ["diagnose", f"{model}:build(4)", "--format", "yaml"])
    assert result.exit_code == ExitCode.OK, result.stderr
