"""Model specs, input shapes and losses."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from gradcheck_cli.choices import LossKind
from gradcheck_cli.cli import main
from gradcheck_cli.errors import InputError, ModelLoadError
from gradcheck_cli.imports import install_hint
from gradcheck_cli.inputs.batches import match_data_dtype
from gradcheck_cli.inputs.calling import resolve_loss
from gradcheck_cli.inputs.shapes import (
    InputShape,
    check_inferred_inputs,
    first_layer,
    fit_token_range,
    infer_input_shape,
)
from gradcheck_cli.loading import load_model
from gradcheck_cli.specs import SpecKind, parse_spec

from .conftest import run_in_new_process


def _file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_spec_forms(tmp_path: Path) -> None:
    src = (
        "from torch import nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self, width=4):\n        super().__init__(); self.l = nn.Linear(width, 2)\n"
        "    def forward(self, x):\n        return self.l(x)\n"
        "def make():\n    return Net(3)\n"
        "instance = Net(5)\n"
    )
    path = _file(tmp_path, "specs_mod.py", src)
    assert load_model(path + ":make").module.l.in_features == 3
    assert load_model(path + ":Net").module.l.in_features == 4
    assert load_model(path + ":instance").module.l.in_features == 5
    assert load_model(path).module.l.in_features == 5  # the single instance
    # imported under its own name, so pickle can find the class again
    assert type(load_model(path).module).__module__ == "specs_mod"
    assert str(tmp_path) in sys.path
    sys.modules.pop("specs_mod", None)
    assert load_model("specs_mod:Net").module.l.in_features == 4  # package.module:NAME


def test_single_class_is_built(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        "only_class.py",
        "from torch import nn\nclass A(nn.Module):\n    def __init__(self):\n"
        "        super().__init__(); self.l = nn.Linear(2, 2)\n",
    )
    assert isinstance(load_model(path).module, nn.Module)


def test_factory_must_return_a_module(tmp_path: Path) -> None:
    path = _file(tmp_path, "bad_factory.py", "def build_model():\n    return 3\n")
    with pytest.raises(ModelLoadError, match="not an nn.Module"):
        load_model(path)


@pytest.mark.parametrize(
    "text,shape,dtype,low,high",
    [
        ("3x32x32", (3, 32, 32), torch.float32, 0, 2),
        ("3,32,32", (3, 32, 32), torch.float32, 0, 2),
        ("128:int64:0-50257", (128,), torch.int64, 0, 50257),
        ("16:float64", (16,), torch.float64, 0, 2),
        ("16:int64", (16,), torch.int64, 0, 2),  # [0, 2) until fit_token_range sees a vocabulary
    ],
)
def test_input_shape_parse(text: str, shape, dtype, low: int, high: int) -> None:
    parsed = InputShape.parse(text)
    assert (parsed.shape, parsed.dtype, parsed.low, parsed.top) == (shape, dtype, low, high)
    batch = parsed.make(4, torch.device("cpu"))
    assert batch.shape == (4, *shape) and batch.dtype == dtype
    if not dtype.is_floating_point:
        assert batch.min() >= low and batch.max() < high


@pytest.mark.parametrize("text", ["", "0x3", "3:int64:5-1", "a", "3:int64:1-2:9"])
def test_input_shape_rejects(text: str) -> None:
    with pytest.raises(InputError):
        InputShape.parse(text)


def test_infer_input_shape() -> None:
    assert infer_input_shape(nn.Sequential(nn.Linear(7, 2))).shape == (7,)
    assert infer_input_shape(nn.Sequential(nn.Conv2d(3, 4, 3))).shape == (3, 32, 32)
    emb = infer_input_shape(nn.Sequential(nn.Embedding(99, 4)))
    assert emb.dtype == torch.int64 and emb.high == 99
    with pytest.raises(InputError, match="--input-shape"):
        infer_input_shape(nn.Sequential(nn.ReLU()))


def test_auto_loss_picks_cross_entropy_for_logits_and_mse_otherwise() -> None:
    kind, loss = resolve_loss(LossKind.AUTO, torch.randn(4, 10, requires_grad=True))
    assert kind is LossKind.CROSS_ENTROPY and loss.dim() == 0
    kind, _ = resolve_loss(LossKind.AUTO, torch.randn(4, 7, 10))  # (N, L, C) sequence logits
    assert kind is LossKind.CROSS_ENTROPY
    kind, _ = resolve_loss(LossKind.AUTO, torch.randn(4, 1))
    assert kind is LossKind.MSE
    kind, value = resolve_loss(LossKind.SUM, torch.ones(2, 3))
    assert kind is LossKind.SUM and value.item() == 6.0
    with pytest.raises(InputError, match="--loss mse"):
        resolve_loss(LossKind.CROSS_ENTROPY, torch.randn(4, 1))


def test_loss_from_structured_outputs() -> None:
    logits = torch.randn(2, 5)
    kind, _ = resolve_loss(LossKind.AUTO, {"hidden": torch.randn(2, 3), "logits": logits})
    assert kind is LossKind.CROSS_ENTROPY
    own = torch.tensor(1.5)
    kind, value = resolve_loss(LossKind.AUTO, {"loss": own, "logits": logits})
    assert kind == "model-output-loss" and value.item() == 1.5
    kind, _ = resolve_loss(LossKind.AUTO, (torch.randn(2, 1), (torch.randn(2, 1),)))
    assert kind is LossKind.MSE
    with pytest.raises(InputError, match="loss_fn"):
        resolve_loss(LossKind.AUTO, ("text", 3))


def test_loss_module_beside_the_model_is_not_ambiguous(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        "with_criterion.py",
        "from torch import nn\nmodel = nn.Linear(3, 2)\ncriterion = nn.CrossEntropyLoss()\n",
    )
    assert isinstance(load_model(path).module, nn.Linear)


def test_bias_only_module_is_not_taken_for_zero_init() -> None:
    from gradcheck_cli.hooks import Recorder
    from gradcheck_cli.layer_facts import measured_modules

    class Shift(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bias = nn.Parameter(torch.ones(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.bias

    zero_head = nn.Linear(3, 3)
    nn.init.zeros_(zero_head.weight)
    model = nn.Sequential(Shift(), zero_head)
    infos = Recorder(model, measured_modules(model)).infos
    assert [i.zero_weights for i in infos] == [False, True]


# --- code as people write it: tests/wild_models ------------------------------------------------

WILD = Path(__file__).resolve().parent / "wild_models"
MLP = str(WILD / "tabular_mlp.py")


def cli(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def clean_imports():  # type: ignore[no-untyped-def]
    """Forget the packages a test imports, and restore sys.path, so tests do not see each
    other's imports."""
    path = list(sys.path)
    modules = set(sys.modules)
    yield
    for name in set(sys.modules) - modules:
        if name.partition(".")[0] in ("tinyvit", "models", "brokenpkg", "okpkg"):
            del sys.modules[name]
    sys.path[:] = path


def _one_error_line(result, fragment: str) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == "" and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("gradcheck: error: "), lines
    assert fragment in lines[0], lines[0]
    return lines[0]


def test_call_spec_builds_with_literal_keyword_and_positional_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The file parses its arguments at import (argparse at module level): it must get its
    # defaults, not gradcheck's own command line.
    argv = ["gradcheck", "diagnose", MLP, "--steps", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    net = load_model(MLP + ":Net(in_dim=30, hidden=128, n_classes=5)").module
    assert sys.argv is argv
    assert [(m.in_features, m.out_features) for m in net.layers] == [(30, 128), (128, 128)]
    assert (net.out.in_features, net.out.out_features) == (128, 5)
    assert net.drop.p == 0.1  # the default
    net = load_model(MLP + ":Net(12, 64, 3, dropout=0.0, n_layers=1)").module
    assert [(m.in_features, m.out_features) for m in net.layers] == [(12, 64)]
    assert net.out.out_features == 3 and net.drop.p == 0.0
    # a factory taking a config dict; ':' inside the arguments is not a separator
    net = load_model(MLP + ":make_net({'in_dim': 7, 'hidden': 16, 'n_classes': 2})").module
    assert (net.layers[0].in_features, net.layers[0].out_features, net.out.out_features) == (
        7,
        16,
        2,
    )


def test_call_spec_on_the_command_line() -> None:
    result = cli(
        "diagnose", MLP + ":Net(in_dim=30, hidden=128, n_classes=5)", "--steps", "1", "--format",
        "json",
    )  # fmt: skip
    assert result.exit_code in (0, 1), result.stderr
    report = json.loads(result.stdout)
    assert report["model"]["type"] == "Net"
    # 30*128+128 + 128*128+128 + 128*5+5, counted by hand
    assert report["model"]["parameters"] == 21125
    assert report["run"]["inputs"] == "inferred 30:float32"
    assert report["model"]["name"].endswith(
        "tabular_mlp.py:Net(in_dim=30, hidden=128, n_classes=5)"
    )


@pytest.mark.parametrize(
    "text,target,name,args,kwargs",
    [
        ("net.py:Net(in_dim=30, hidden=128)", "net.py", "Net", (), {"in_dim": 30, "hidden": 128}),
        ("a/b.py:make(3, (1, 2), act='relu')", "a/b.py", "make", (3, (1, 2)), {"act": "relu"}),
        ("b.py:Net(cfg={'k': 'x:y'}, p=-0.5)", "b.py", "Net", (), {"cfg": {"k": "x:y"}, "p": -0.5}),
        ("pkg.mod:Net(None, True)", "pkg.mod", "Net", (None, True), {}),
        ("C:\\m\\net.py:Net(a=1)", "C:\\m\\net.py", "Net", (), {"a": 1}),
        ("net.py:Net()", "net.py", "Net", (), {}),
    ],
)
def test_parse_spec_arguments(text: str, target: str, name: str, args, kwargs) -> None:
    spec = parse_spec(text)
    assert (spec.target, spec.name, spec.args, spec.keywords, spec.call) == (
        target,
        name,
        args,
        kwargs,
        True,
    )
    assert spec.kind is (SpecKind.MODULE if target == "pkg.mod" else SpecKind.FILE)


def test_parse_spec_without_call() -> None:
    spec = parse_spec("net.py:Net")
    assert (spec.kind, spec.name, spec.call) == (SpecKind.FILE, "Net", False)
    assert parse_spec("model.pt").kind is SpecKind.SAVED
    assert parse_spec("net.py").name is None


BAD_CALLS = [
    ("Net(in_dim=x)", "the argument x is not a literal"),
    ("Net(act=nn.ReLU())", "the argument nn.ReLU() is not a literal"),
    ("Net(in_dim=cfg.dim)", "the argument cfg.dim is not a literal"),
    ("Net(__import__('os').getcwd())", "is not a literal"),
    ("Net(in_dim=30", "the arguments of Net are not valid Python"),
    ("Net(in_dim=30,, 2)", "not valid Python"),
    ("Net(**cfg)", "**cfg is not allowed"),
    ("Net(*dims)", "*dims is not allowed"),
    ("Net(1)(2)", "write one call"),
]


@pytest.mark.parametrize("call,fragment", BAD_CALLS, ids=[c for c, _ in BAD_CALLS])
def test_non_literal_or_malformed_arguments_are_usage_errors(call: str, fragment: str) -> None:
    line = _one_error_line(cli("diagnose", f"{MLP}:{call}"), fragment)
    assert "numbers, strings, True/False/None" in line  # what is allowed


def test_constructor_errors_name_the_class_and_the_error() -> None:
    line = _one_error_line(
        cli("diagnose", MLP + ":Net(in_dim=30, hidden=-1, n_classes=5)"),
        "Net(in_dim=30, hidden=-1, n_classes=5) raised ValueError: hidden must be positive, got -1",
    )
    assert "fix the file" not in line
    _one_error_line(
        cli("diagnose", MLP + ":Net(in_dim=30, hiden=128, n_classes=5)"),
        "does not fit Net(in_dim, hidden, n_classes, dropout=0.1, n_layers=2): missing a "
        "required argument: 'hidden'",
    )
    _one_error_line(
        cli("diagnose", MLP + ":Net"), "calling Net with no arguments failed (missing a required"
    )
    _one_error_line(
        cli("diagnose", str(WILD / "mnist_cnn.py") + ":net(3)"),
        "net is a module instance, not a class or factory",
    )


def test_file_in_a_package_is_imported_with_its_relative_imports(clean_imports) -> None:
    path = WILD / "tinyvit" / "model.py"
    sys.path[:] = [p for p in sys.path if p != str(WILD)]  # as in a fresh process
    model = load_model(f"{path}:TinyViT(depth=1, num_classes=7)").module
    assert type(model).__module__ == "tinyvit.model"
    assert type(model.blocks[0]).__module__ == "tinyvit.layers"  # from .layers import Block
    assert len(model.blocks) == 1 and model.head.out_features == 7
    assert tuple(model.pos.shape) == (1, 197, 192)
    assert sys.path[-1] == str(WILD)  # the package root's parent, after everything installed
    assert str(WILD / "tinyvit") not in sys.path
    result = cli(
        "diagnose", f"{path}:TinyViT(depth=1)", "--input-shape", "3x224x224", "--steps", "1",
        "--batch-size", "2", "--format", "json",
    )  # fmt: skip
    assert result.exit_code in (0, 1), result.stderr
    report = json.loads(result.stdout)
    assert report["model"]["type"] == "TinyViT"
    assert report["run"]["inputs"] == "3x224x224:float32"


def test_failed_package_import_is_cleaned_up(tmp_path: Path, clean_imports) -> None:
    package = tmp_path / "brokenpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "layers.py").write_text("import torch.nn as nn\nBlock = nn.Linear\n")
    (package / "model.py").write_text(
        "from .layers import Block\nfrom .layerz import Head\nmodel = Block(3, 3)\n"
    )
    with pytest.raises(ModelLoadError, match=r"imports 'brokenpkg.layerz', which does not exist"):
        load_model(str(package / "model.py"))
    assert not any(name.partition(".")[0] == "brokenpkg" for name in sys.modules)
    assert str(tmp_path) not in sys.path


@pytest.mark.parametrize(
    "name,owner",
    [("json", "the standard library's 'json'"), ("yaml", "the installed 'yaml'")],
)
def test_package_named_like_an_importable_one_is_refused(
    tmp_path: Path, name: str, owner: str
) -> None:
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "model.py").write_text("import torch.nn as nn\nmodel = nn.Linear(3, 2)\n")
    original = sys.modules[name]
    line = _one_error_line(cli("diagnose", str(package / "model.py")), owner)
    assert f"rename the folder {name}" in line
    assert sys.modules[name] is original and str(tmp_path) not in sys.path


def test_plain_file_named_like_the_standard_library_does_not_replace_it(tmp_path: Path) -> None:
    import token

    path = _file(tmp_path, "token.py", "import torch.nn as nn\nmodel = nn.Linear(3, 2)\n")
    model = load_model(path).module
    assert isinstance(model, nn.Linear) and model.in_features == 3
    assert sys.modules["token"] is token  # the standard library's, still
    assert type(model).__module__ == "torch.nn.modules.linear"


def test_dotted_module_is_found_in_the_current_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clean_imports
) -> None:
    project = WILD / "project"
    monkeypatch.chdir(project)
    model = load_model("models.rnn:GRUClassifier(hidden_size=16, num_classes=4)").module
    assert type(model).__module__ == "models.rnn"
    assert (model.gru.hidden_size, model.head[1].out_features) == (16, 4)
    assert str(project) not in sys.path  # first on sys.path for that import only
    assert load_model("models.rnn:build(hidden_size=8)").module.gru.hidden_size == 8
    # The package folder itself, named as the module (its __init__ re-exports nothing here).
    assert load_model("models:rnn.build(hidden_size=4)").module.gru.hidden_size == 4
    result = cli("diagnose", "models.rnn:build(hidden_size=8)", "--steps", "1", "--format", "json")
    assert result.exit_code in (0, 1), result.stderr
    assert json.loads(result.stdout)["run"]["inputs"] == "inferred 32x8:float32"
    for name in [n for n in sys.modules if n.partition(".")[0] == "models"]:
        del sys.modules[name]
    monkeypatch.chdir(tmp_path)  # elsewhere, it is not found
    _one_error_line(cli("diagnose", "models.rnn:build"), "cannot import module 'models.rnn'")


def test_dotted_module_in_the_current_directory_may_not_shadow(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "yaml.py").write_text("import torch.nn as nn\nNet = nn.Linear\n")
    monkeypatch.chdir(tmp_path)
    line = _one_error_line(cli("diagnose", "yaml:Net(3, 2)"), "the installed 'yaml'")
    assert "rename the file yaml.py" in line


# --- inputs ------------------------------------------------------------------------------------


def test_root_parameters_are_looked_through_to_the_first_layer(clean_imports) -> None:
    vit = load_model(f"{WILD / 'tinyvit' / 'model.py'}:TinyViT(depth=1)").module
    assert first_layer(vit)[0] == "patch_embed.proj"
    assert infer_input_shape(vit).shape == (3, 32, 32)  # the guess, not the (1, 197, 192) table
    text = load_model(str(WILD / "text_classifier.py")).module
    ids = infer_input_shape(text)
    assert (ids.shape, ids.dtype, ids.low, ids.high) == ((32,), torch.int64, 0, 1000)


def test_token_ids_span_the_first_embedding() -> None:
    spec = str(WILD / "text_classifier.py")
    result = cli("diagnose", spec, "--steps", "1", "--format", "json")
    assert result.exit_code in (0, 1), result.stderr
    assert json.loads(result.stdout)["run"]["inputs"] == "inferred 32:int64:0-1000"
    result = cli("diagnose", spec, "--input-shape", "20:int64", "--steps", "1", "--format", "json")
    assert result.exit_code in (0, 1), result.stderr
    assert json.loads(result.stdout)["run"]["inputs"] == "20:int64:0-1000"
    (fitted,) = fit_token_range([InputShape.parse("20:int64")], load_model(spec).module)
    batch = fitted.make(64, torch.device("cpu"))
    assert batch.min() >= 0 and batch.max() < 1000 and batch.max() > 900  # the whole vocabulary


INFERRED_MISFITS = [
    (
        "head_first.py",
        (
            "fails on 128, the input inferred from its first layer Linear(in_features=128) 'head' "
            "(RuntimeError: mat1 and mat2 shapes cannot be multiplied",
            "; 30 runs (the input of Linear(in_features=30) 'encoder.0'): try --input-shape 30",
        ),
        "30",
    ),
    (
        "tinyvit/model.py:TinyViT(depth=1)",
        (
            "fails on 3x32x32, the input inferred from its first layer Conv2d(in_channels=3) "
            "'patch_embed.proj' (RuntimeError: The size of tensor a (5) must match the size of "
            "tensor b (197)",
            "; 3x224x224 runs: try --input-shape 3x224x224",
        ),
        "3x224x224",
    ),
]


@pytest.mark.parametrize(
    "model_file,fragments,works", INFERRED_MISFITS, ids=[m[0] for m in INFERRED_MISFITS]
)
def test_inferred_input_that_fails_names_the_size_that_runs(
    model_file: str, fragments: tuple[str, ...], works: str, clean_imports
) -> None:
    spec = str(WILD / model_file)
    line = _one_error_line(cli("diagnose", spec, "--batch-size", "2"), fragments[0])
    assert fragments[1] in line
    result = cli(
        "diagnose", spec, "--input-shape", works, "--steps", "1", "--batch-size", "2", "--format",
        "json",
    )  # fmt: skip
    assert result.exit_code in (0, 1), result.stderr
    assert json.loads(result.stdout)["run"]["inputs"] == f"{works}:float32"


def test_a_cnn_flattened_into_a_linear_layer_gets_its_own_image_size(clean_imports) -> None:
    # mnist_cnn.py: two convolutions, then a Linear sized for 28x28 inputs; 32x32 (the guess)
    # would not fit it, 28x28 is found without a flag.
    result = cli("diagnose", str(WILD / "mnist_cnn.py"), "--steps", "1", "--format", "json")
    assert result.exit_code in (0, 1), result.stderr
    assert json.loads(result.stdout)["run"]["inputs"] == "inferred 1x28x28:float32"


def test_inferred_input_for_a_forward_with_two_inputs() -> None:
    class Masked(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.l = nn.Linear(6, 2)

        def forward(self, x: torch.Tensor, mask: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
            return self.l(x * mask) * scale

    with pytest.raises(InputError, match=r"forward takes 2 inputs \(x, mask\): give --input-shape"):
        check_inferred_inputs(Masked())


def test_parameters_of_a_nested_container_are_looked_through_too() -> None:
    class Stem(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pos = nn.Parameter(torch.zeros(1, 10, 8))
            self.proj = nn.Linear(4, 8)

    model = nn.Sequential(Stem(), nn.Linear(8, 2))
    assert first_layer(model) == ("0.proj", model[0].proj)
    assert infer_input_shape(model).shape == (4,)
    assert first_layer(nn.Sequential(nn.LayerNorm(5)))[0] == "0"  # a leaf with weights
    with pytest.raises(InputError, match=r"first layer \(LayerNorm '0'\)"):
        infer_input_shape(nn.Sequential(nn.LayerNorm(5), nn.Linear(5, 2)))


def test_inferred_input_with_nothing_that_runs() -> None:
    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.l = nn.Linear(7, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.l(x.view(-1, 5))

    with pytest.raises(InputError, match="no input built from the sizes of its layers runs"):
        check_inferred_inputs(Odd())


def test_checking_inputs_changes_nothing(clean_imports) -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 5), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(2304, 3))
    model.eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    assert check_inferred_inputs(model).shape == (1, 28, 28)  # what the Linear layer fits
    assert not model.training and not any(m.training for m in model.modules())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)
    assert check_inferred_inputs(nn.Sequential(nn.Linear(30, 2))).shape == (30,)


def test_float64_data_is_cast_to_a_float32_model(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((40, 30))  # float64, as numpy makes it
    np.save(tmp_path / "x.npy", x)
    spec = MLP + ":Net(in_dim=30, hidden=16, n_classes=3)"
    args = ["diagnose", spec, "--data", str(tmp_path / "x.npy"), "--steps", "1", "--format", "json"]
    result = cli(*args)
    assert result.exit_code in (0, 1), result.stderr
    assert (
        "gradcheck: note: --data holds float64 inputs; cast to float32, the dtype of the "
        "model's parameters" in result.stderr
    )
    assert json.loads(result.stdout)["run"]["inputs"] == f"data {tmp_path / 'x.npy'} (40 rows)"
    assert "note" not in cli(*args, "-q").stderr
    double = _file(
        tmp_path,
        "double_net.py",
        "import torch.nn as nn\ndef build_model():\n"
        "    return nn.Sequential(nn.Linear(30, 8), nn.Tanh(), nn.Linear(8, 3)).double()\n",
    )
    result = cli("diagnose", double, "--data", str(tmp_path / "x.npy"), "--steps", "1")
    assert result.exit_code in (0, 1), result.stderr
    assert "note" not in result.stderr  # a float64 model keeps float64 data
    half = nn.Linear(30, 3).half()
    cast, note = match_data_dtype({"x": torch.from_numpy(x), "ids": torch.arange(40)}, half)
    assert cast["x"].dtype == torch.float16 and cast["ids"].dtype == torch.int64
    assert note is not None and "cast to float16" in note


# --- missing packages --------------------------------------------------------------------------


def test_model_file_importing_a_missing_extra_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed
    line = _one_error_line(
        cli("diagnose", str(WILD / "hf_sentiment.py")),
        "hf_sentiment.py' needs the 'transformers' package, which is not installed: "
        "pip install 'gradcheck-cli[huggingface]'",
    )
    assert "fix the file" not in line
    _one_error_line(cli("diagnose", "hf:BertModel"), "pip install 'gradcheck-cli[huggingface]'")


@pytest.mark.parametrize("zoo", ["timm", "torchvision"])
def test_zoo_without_its_package_names_it(monkeypatch: pytest.MonkeyPatch, zoo: str) -> None:
    monkeypatch.setitem(sys.modules, zoo, None)
    _one_error_line(
        cli("diagnose", f"{zoo}:resnet18"),
        f"'{zoo}:resnet18' needs the '{zoo}' package, which is not installed: pip install {zoo}",
    )


def test_unknown_missing_module_says_both_possibilities(tmp_path: Path) -> None:
    path = _file(tmp_path, "uses_sibling.py", "from my_layers import Block\nmodel = Block(3, 2)\n")
    line = _one_error_line(
        cli("diagnose", path),
        "imports 'my_layers', which is not installed: pip install my_layers (if 'my_layers' is "
        "your own module",
    )
    assert "fix the file" not in line
    assert install_hint("sklearn.linear_model") == "pip install scikit-learn"
    assert install_hint("lightning.pytorch") == "pip install 'gradcheck-cli[lightning]'"


@pytest.mark.slow
def test_pickled_model_from_a_package_file_loads_in_a_new_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_imports
) -> None:
    # What `gradcheck fix --output` leaves: model.pt pickling okpkg.model.Deep, and a plan.yaml
    # naming the source, whose package root must be importable again to unpickle it.
    package = tmp_path / "okpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "layers.py").write_text(
        "import torch.nn as nn\n\ndef block(a, b):\n    return [nn.Linear(a, b), nn.Tanh()]\n"
    )
    (package / "model.py").write_text(
        "import torch.nn as nn\nfrom .layers import block\n\n"
        "class Deep(nn.Module):\n"
        "    def __init__(self, depth=4, width=8):\n"
        "        super().__init__()\n"
        "        self.net = nn.Sequential(*[m for _ in range(depth) for m in block(width, width)])\n"
        "    def forward(self, x):\n        return self.net(x)\n"
    )
    monkeypatch.chdir(tmp_path)
    model = load_model("okpkg/model.py:Deep(depth=3)").module
    out = tmp_path / "out"
    out.mkdir()
    torch.save(model, out / "model.pt")
    source = f"{package / 'model.py'}:Deep(depth=3)"
    (out / "plan.yaml").write_text(f"plan_version: 1\nsource: {source}\n")
    done = run_in_new_process(  # from a folder where okpkg cannot be found otherwise
        "diagnose", "model.pt", "--trust-pickle", "--steps", "1", "--format", "json", cwd=out
    )
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(done.stdout)
    assert report["model"]["type"] == "Deep"
    assert report["model"]["parameters"] == 3 * (8 * 8 + 8)


def test_the_python_api_checks_an_inferred_input_and_names_one_that_runs() -> None:
    import torch
    from torch import nn

    from gradcheck_cli import diagnose
    from gradcheck_cli.errors import InputError

    class Patches(nn.Module):
        """Patches of 4x4 plus a learned table of 7x7 positions: 28x28 images only, and no
        Linear layer whose size says so."""

        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Conv2d(1, 8, 4, stride=4)
            self.position = nn.Parameter(torch.zeros(1, 8, 7, 7))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (self.proj(x) + self.position).mean(dim=(2, 3))

    with pytest.raises(InputError) as caught:
        diagnose(Patches())
    message = str(caught.value)
    assert "fails on 1x32x32" in message
    assert "1x28x28 runs" in message
    assert message.endswith("(from Python: pass inputs=, a batch or a function of the batch size)")
    report = diagnose(Patches(), lambda b: torch.randn(b, 1, 28, 28), steps=1)
    assert report.layers[0].act_rms.median > 0


@pytest.mark.parametrize(
    ("dims", "needed", "stack"),
    [
        (2, 16, lambda: [nn.Conv2d(1, 8, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.MaxPool2d(2)]),  # noqa: E501
        (2, 28, lambda: [nn.Conv2d(1, 6, 5), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.MaxPool2d(2)]),  # LeNet on MNIST  # noqa: E501
        (1, 100, lambda: [nn.Conv1d(3, 8, 5, stride=2), nn.ReLU(), nn.Conv1d(8, 4, 3)]),
    ],
)  # fmt: skip
def test_a_conv_nets_spatial_size_is_the_one_its_linear_layer_fits(
    dims: int, needed: int, stack: Any
) -> None:
    # The first convolution gives the channels; the size is a guess (32x32, 64) that a conv
    # stack flattened into a Linear refuses: the size whose features fit that Linear is taken.
    from gradcheck_cli.api import diagnose
    from gradcheck_cli.inputs.shapes import check_inferred_inputs

    features = nn.Sequential(*stack())
    channels = features[0].in_channels
    with torch.no_grad():
        flat = features(torch.zeros(1, channels, *(needed,) * dims)).numel()
    model = nn.Sequential(features, nn.Flatten(), nn.Linear(flat, 10))
    shape = check_inferred_inputs(model)
    assert shape.shape == (channels, *(needed,) * dims)
    report = diagnose(model, steps=1)
    assert report.run.inputs == f"inferred {'x'.join(map(str, shape.shape))}:float32"
