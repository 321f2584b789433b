"""Models as a team writes them: a ``src/`` package with relative imports, configured by
dataclasses, named by module or by file, with no glue file (issue 24, item 2)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from gradcheck_cli.cli import main
from gradcheck_cli.errors import ModelLoadError
from gradcheck_cli.loading import load_model
from gradcheck_cli.specs import parse_spec

CONFIG = """
from dataclasses import dataclass, field


@dataclass
class BlockConfig:
    width: int = 16


@dataclass
class MLPConfig:
    depth: int = 4
    inputs: int = 8
    block: BlockConfig = field(default_factory=BlockConfig)
"""

RESMLP = """
from __future__ import annotations

from os import system  # imported, so a spec could name it: it must never be called
from typing import Optional

import torch
from torch import nn

from .config import BlockConfig, MLPConfig


class ResMLP(nn.Module):
    def __init__(self, cfg: MLPConfig, head: Optional[BlockConfig] = None) -> None:
        super().__init__()
        width = cfg.block.width
        self.stem = nn.Linear(cfg.inputs, width)
        self.blocks = nn.ModuleList(nn.Linear(width, width) for _ in range(cfg.depth))
        self.head = nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = h + torch.relu(block(h))
        return self.head(h)


def example_inputs(batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, 8)
"""


@pytest.fixture
def team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A repository root holding ``src/ourmodels`` (not installed); the working directory.
    Each test's package is a new one: the last one's modules are forgotten afterwards."""
    package = tmp_path / "src" / "ourmodels"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "config.py").write_text(textwrap.dedent(CONFIG))
    (package / "resmlp.py").write_text(textwrap.dedent(RESMLP))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path / "nowhere"))  # sys.path restored afterwards
    yield tmp_path
    for name in [n for n in sys.modules if n == "ourmodels" or n.startswith("ourmodels.")]:
        del sys.modules[name]


def _layers(spec: str) -> list[str]:
    done = CliRunner().invoke(main, ["diagnose", spec, "--format", "yaml"])
    assert done.exit_code == 0, done.output
    return [layer["name"] for layer in yaml.safe_load(done.stdout)["layers"]]


@pytest.mark.parametrize(
    ("spec", "depth", "width"),
    [
        ("ourmodels.resmlp:ResMLP", 4, 16),  # cfg built from MLPConfig's defaults
        ("ourmodels.resmlp:ResMLP(MLPConfig(depth=2))", 2, 16),
        ("ourmodels.resmlp:ResMLP(cfg=MLPConfig(depth=3, block=BlockConfig(width=4)))", 3, 4),
        ("src/ourmodels/resmlp.py:ResMLP", 4, 16),  # the file, with its relative imports
        ("src/ourmodels/resmlp.py:ResMLP(MLPConfig(depth=1))", 1, 16),
    ],
)
def test_a_dataclass_configured_model_in_a_src_package_is_built_without_glue(
    team: Path, spec: str, depth: int, width: int
) -> None:
    loaded = load_model(spec)
    assert len(loaded.module.blocks) == depth
    assert loaded.module.stem.out_features == width
    assert _layers(spec) == ["stem", *(f"blocks.{i}" for i in range(depth)), "head"]


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("ourmodels.resmlp:ResMLP(system('touch pwned'))", "system is not a config class"),
        ("ourmodels.resmlp:ResMLP(Missing(depth=2))", "there is no name 'Missing'"),
        ("ourmodels.resmlp:ResMLP(MLPConfig(depth=n))", "the argument n is not a literal"),
        ("ourmodels.resmlp:ResMLP(MLPConfig(depth=2).block)", "not a literal"),
        ("ourmodels.resmlp:ResMLP(MLPConfig(bogus=1))", "MLPConfig(bogus=1) raised TypeError"),
        ("ourmodels.resmlp:ResMLP(torch.nn.Linear(2, 2))", "not a literal"),
    ],
)
def test_config_calls_run_nothing_but_config_classes(team: Path, spec: str, says: str) -> None:
    with pytest.raises(ModelLoadError, match=None) as raised:
        load_model(spec)
    assert says in str(raised.value)
    done = CliRunner().invoke(main, ["diagnose", spec])
    assert done.exit_code == 2 and says in done.output and "Traceback" not in done.output
    assert not (team / "pwned").exists()


def test_a_config_call_keeps_what_the_user_wrote() -> None:
    parsed = parse_spec("net.py:Net(Config(depth=2, sizes=[1, 2]), 'x', k=Inner())")
    assert parsed.call_text() == "Net(Config(depth=2, sizes=[1, 2]), 'x', k=Inner())"
    deep = "net.py:Net(" + "C(" * 3000 + ")" * 3000 + ")"
    with pytest.raises(ModelLoadError, match="nested too deeply|not valid Python"):
        parse_spec(deep)
    # What ast.parse itself cannot take is bad input too (it was exit 3): deep expressions, a
    # lone surrogate (an undecodable byte on the command line).
    for text in ("net.py:Net(" + "1+" * 50000 + "1)", "net.py:Net(" + "-" * 100000 + "1)"):
        with pytest.raises(ModelLoadError, match="nested too deeply"):
            parse_spec(text)
    for text in ("net.py:Net(\udcff)", 'net.py:Net(Cfg(hidden="\udcff"))'):
        with pytest.raises(ModelLoadError, match="a character that is not text"):
            parse_spec(text)


def test_a_config_that_refuses_its_values_is_one_line(team: Path) -> None:
    (team / "src" / "ourmodels" / "strict.py").write_text(
        "from dataclasses import dataclass\n"
        "from torch import nn\n\n\n"
        "@dataclass\n"
        "class Cfg:\n"
        "    width: int = 4\n\n"
        "    def __post_init__(self):\n"
        "        if self.width < 1:\n"
        "            raise ValueError('width must be positive\\nsee the docs')\n\n\n"
        "class Net(nn.Linear):\n"
        "    def __init__(self, cfg: Cfg):\n"
        "        super().__init__(cfg.width, 2)\n"
    )
    done = CliRunner().invoke(main, ["diagnose", "ourmodels.strict:Net(Cfg(width=0))"])
    assert done.exit_code == 2 and done.output.count("\n") == 1, done.output
    assert "Cfg(width=0) raised ValueError: width must be positive; check" in done.output
