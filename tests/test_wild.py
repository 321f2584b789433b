"""Models written as their authors would (issue 10): the values behind each verdict.

The corpus (tests/corpus.yaml) fixes the verdicts; these tests assert the numbers and names the
structure-aware rules rest on, and that ``fix`` cures what they find in a fresh process.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from gradcheck_cli import diagnose, fix
from gradcheck_cli.findings import Report, Severity
from gradcheck_cli.loading import load_model

from .conftest import SAMPLES, run_in_new_process


def _diagnose(spec: str) -> Report:
    torch.manual_seed(0)  # construction: the router's init decides which experts get rows
    loaded = load_model(str(SAMPLES / spec))
    return diagnose(loaded.module, loaded.example_inputs, loaded.loss_fn)


def _only(report: Report, finding_id: str) -> Any:
    (finding,) = [f for f in report.findings if f.id == finding_id]
    return finding


def test_layerscale_blocks_are_info_naming_the_scales() -> None:
    report = _diagnose("convnext_layerscale.py")
    assert report.status.value == "healthy"
    scales = {l.name for l in report.layers if l.residual_scale}
    assert scales == {
        "stages.0.1",
        "stages.0.2",
        "stages.1.1",
        "stages.1.2",
        "stages.2.1",
        "stages.2.2",
    }
    assert all(l.near_zero_weights for l in report.layers if l.residual_scale)
    vanishing = _only(report, "vanishing")
    assert vanishing.severity is Severity.INFO
    assert vanishing.evidence["residual_scales"] == 6
    assert "residual scale(s) (LayerScale/ReZero" in vanishing.message


def test_rezero_gates_block_only_until_the_first_step() -> None:
    report = _diagnose("rezero.py")
    finding = _only(report, "no-gradient")
    assert finding.severity is Severity.INFO
    assert finding.evidence["reason"] == "zero-init"
    assert finding.evidence["zero_initialised"] == [f"blocks.{b}" for b in range(6)]
    assert {l.name for l in report.layers if l.residual_scale} == {f"blocks.{b}" for b in range(6)}


def test_two_heads_are_both_next_to_the_loss() -> None:
    report = _diagnose("two_heads.py")
    depth = {l.name: l.depth for l in report.layers if l.depth}
    assert depth["cls_head"] == depth["reg_head"] == 1
    assert depth["fuse.0"] == 2 and depth["cnn.0"] == 5 and depth["mlp.0"] == 4
    assert {l.name for l in report.layers if l.is_input} == {"cnn.0", "mlp.0"}
    assert report.findings == ()


def test_small_init_cnn_is_an_init_bug() -> None:
    report = _diagnose("small_init_cnn.py")
    finding = _only(report, "vanishing")
    assert finding.severity is Severity.ERROR
    assert finding.evidence["rule"] == "small-init"
    assert finding.evidence["small_layers"] == 15 and finding.evidence["weight_layers"] == 16
    # x0.01 of PyTorch's default, whose RMS is 1/sqrt(3 fan_in): the norm is 0.01/sqrt(3) of
    # the 1/sqrt(fan_in) scale, biases (untouched) lifting it a little.
    assert 0.01 / math.sqrt(3) < finding.evidence["median_scale"] < 0.06
    assert finding.layers == tuple(f"features.{2 * i}" for i in range(15))


def test_routed_experts_idle_by_chance_are_info() -> None:
    report = _diagnose("moe.py")
    finding = _only(report, "no-gradient")
    assert finding.severity is Severity.INFO
    evidence = finding.evidence
    assert evidence["group"] == "moe.experts.*" and evidence["experts"] == 64
    assert evidence["routed_rows"] == 48  # 3 steps x 16 tokens, top-1
    assert math.isclose(evidence["expected_idle"], 64 * (63 / 64) ** 48)
    idle = {
        l.name.split(".")[2]
        for l in report.layers
        if l.name.startswith("moe.experts.") and not l.calls
    }
    assert evidence["idle_experts"] == len(idle)
    assert 20 <= len(idle) <= 45  # about 30 by chance; a random router is not uniform


def test_softmax_at_temperature_1e_3_saturates_nearly_every_row() -> None:
    report = _diagnose("softmax_temperature.py")
    finding = _only(report, "saturation")
    assert finding.severity is Severity.ERROR
    assert finding.layers == ("softmax",)
    assert 0.9 <= finding.evidence["max_saturated_fraction"] <= 1.0  # 15 of 16 rows at seed 0
    loaded = load_model(f"{SAMPLES / 'softmax_temperature.py'}:build_healthy")
    healthy = diagnose(loaded.module, loaded.example_inputs)
    (softmax,) = [l for l in healthy.layers if l.name == "softmax"]
    assert softmax.saturated_fraction.median == 0.0  # type: ignore[union-attr]
    assert healthy.findings == ()


@pytest.fixture(scope="module")
def cured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``gradcheck fix --output`` on the two models the issue found uncured, run once."""
    out = {}
    for sample in ("shared_sigmoid_mlp.py", "small_init_cnn.py"):
        folder = tmp_path_factory.mktemp(sample.removesuffix(".py"))
        done = run_in_new_process(
            "fix", str(SAMPLES / sample), "--output", str(folder / "fixed"), "-q", cwd=folder
        )
        assert done.returncode == 0, done.stderr
        out[sample] = folder / "fixed"
    return out


@pytest.mark.parametrize("sample", ["shared_sigmoid_mlp.py", "small_init_cnn.py"])
@pytest.mark.slow
def test_fix_cures_and_the_saved_model_measures_healthy(
    sample: str, cured: dict[str, Path]
) -> None:
    folder = cured[sample]
    check = run_in_new_process(
        "diagnose", str(folder / "model.pt"), "--trust-pickle", "--format", "json", cwd=folder
    )
    fresh = json.loads(check.stdout)
    assert check.returncode == 0, [f["message"] for f in fresh["findings"]]
    assert fresh["status"] == "healthy"
    weights = [l for l in fresh["layers"] if l["kind"] == "weight"]
    ratios = [l["grad_to_weight"]["median"] for l in weights]
    # The first layer learns at least 1e-2 as fast as the last (it was 0 or 1e-17 before).
    assert ratios[0] > 1e-2 * ratios[-2] > 0


def test_shared_activation_gets_he_init_at_every_call_site() -> None:
    loaded = load_model(str(SAMPLES / "shared_sigmoid_mlp.py"))
    result = fix(loaded.module, loaded.example_inputs, remedies=["relu-swap"])
    assert result.chosen is not None
    edits = result.chosen.plan.edits
    assert [e.target for e in edits if e.op == "replace-activation"] == ["act"]
    assert sorted(e.target for e in edits if e.op == "init") == sorted(
        f"layers.{i}" for i in range(29)
    )
    assert result.chosen.report.status.value == "healthy"


def test_a_functional_softmax_is_measured_from_the_graph() -> None:
    class Pool(torch.nn.Module):
        def __init__(self, temperature: float) -> None:
            super().__init__()
            self.q, self.k, self.v = (torch.nn.Linear(16, 16) for _ in range(3))
            self.temperature = temperature

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            scores = self.q(x.mean(1, keepdim=True)) @ self.k(x).transpose(1, 2)
            return (torch.softmax(scores / self.temperature, dim=-1) @ self.v(x)).squeeze(1)

    def run(temperature: float) -> Report:
        torch.manual_seed(0)
        model = torch.nn.Sequential(Pool(temperature), torch.nn.Linear(16, 3))
        return diagnose(model, lambda b: torch.randn(b, 12, 16))

    cold = run(1e-3)
    finding = _only(cold, "saturation")
    # A floor: rows whose every other entry underflowed to 0 look masked and are not counted.
    assert finding.severity.rank >= Severity.WARNING.rank and finding.layers == ("0.softmax()",)
    assert finding.evidence["max_saturated_fraction"] >= 0.2
    (rows,) = [l for l in cold.layers if l.type == "softmax()"]
    assert rows.order > max(l.order for l in cold.layers if l.name in ("0.q", "0.k"))
    warm = run(4.0)
    (rows,) = [l for l in warm.layers if l.type == "softmax()"]
    assert rows.saturated_fraction.median == 0.0  # type: ignore[union-attr]
    assert warm.findings == ()


def test_a_nan_in_the_second_output_of_a_tuple_is_located_there() -> None:
    def loss_fn(output: tuple[torch.Tensor, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
        mean, log_var = output
        return (mean.square() + log_var).mean()

    class Head(torch.nn.Module):  # (mean, log of a signed output): NaN for about half the rows
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(8, 2)

        def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            mean, raw = self.proj(h).unbind(-1)
            return mean, raw.log()

    class Split(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Linear(4, 8)
            self.head = Head()

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.head(torch.relu(self.body(x)))

    torch.manual_seed(0)
    report = diagnose(Split(), lambda b: torch.randn(b, 4), loss_fn)
    finding = _only(report, "nonfinite")
    assert finding.severity is Severity.ERROR
    assert "appear first in head (forward pass" in finding.message


def test_a_dict_batch_goes_to_a_forward_that_takes_one_argument() -> None:
    class Batched(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.image = torch.nn.Linear(12, 8)
            self.table = torch.nn.Linear(3, 8)
            self.head = torch.nn.Linear(8, 2)

        def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return self.head(torch.relu(self.image(batch["image"]) + self.table(batch["tab"])))

    torch.manual_seed(0)
    report = diagnose(Batched(), lambda b: {"image": torch.randn(b, 12), "tab": torch.randn(b, 3)})
    assert report.status.value == "healthy"
    assert {l.name for l in report.layers if l.is_input} == {"image", "table"}


def test_a_shared_activation_is_judged_by_its_worst_call() -> None:
    class Shared(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2, self.head = (torch.nn.Linear(8, 8) for _ in range(3))
            self.act = torch.nn.Sigmoid()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.act(self.fc1(x * 255.0))  # raw pixel values: this call saturates
            for _ in range(5):
                h = self.act(self.fc2(h))  # these five do not
            return self.head(h)

    torch.manual_seed(0)
    model = Shared()
    x = torch.rand(16, 8)
    first = torch.sigmoid(model.fc1(x * 255.0)).detach()
    expected = ((first <= 0.01) | (first >= 0.99)).double().mean().item()
    report = diagnose(model, x, steps=1)
    (act,) = [l for l in report.layers if l.name == "act"]
    assert act.calls == 6
    assert math.isclose(act.saturated_fraction.median, expected, rel_tol=1e-6)  # type: ignore[union-attr]
    assert expected > 0.5 and _only(report, "saturation").severity is Severity.ERROR


def test_a_tower_whose_optional_input_was_not_given_is_info() -> None:
    class TwoTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.text, self.vision = torch.nn.Linear(8, 8), torch.nn.Linear(12, 8)
            self.head = torch.nn.Linear(8, 2)

        def forward(
            self, tokens: torch.Tensor, pixel_values: torch.Tensor | None = None
        ) -> torch.Tensor:
            h = self.text(tokens)
            if pixel_values is not None:
                h = h + self.vision(pixel_values)
            return self.head(torch.relu(h))

    torch.manual_seed(0)
    text_only = diagnose(TwoTower(), lambda b: torch.randn(b, 8))
    finding = _only(text_only, "no-gradient")
    assert finding.severity is Severity.INFO and finding.layers == ("vision",)
    assert finding.evidence["inputs"] == ["pixel_values"]
    both = diagnose(TwoTower(), lambda b: (torch.randn(b, 8), torch.randn(b, 12)))
    assert both.findings == ()


def test_a_cnn_without_its_batchnorm_collapses_the_forward_signal() -> None:
    report = _diagnose("cnn_no_norm.py")
    finding = _only(report, "vanishing")
    assert finding.severity is Severity.WARNING
    assert finding.evidence["rule"] == "signal"
    assert finding.layers == ("classifier",)
    by_name = {l.name: l for l in report.layers}
    assert finding.evidence["head_input_rms"] == pytest.approx(
        by_name["classifier"].in_rms.median, rel=1e-3
    )
    assert finding.evidence["input_layer_rms"] == pytest.approx(by_name["stem"].act_rms.median)
    assert 1e-3 < finding.evidence["decay"] < 1e-2
    # The same net with a variance-preserving (fan-in) init is healthy.
    assert _diagnose("cnn_no_norm.py:Net(init='fan_in')").findings == ()


def test_a_wide_depthwise_conv_at_fan_out_init_does_not_excuse_vanishing() -> None:
    """Six blocks of 1,024 depthwise channels at Kaiming fan-out: 4.4% of 1/sqrt(fan_in), flagged
    near zero, but no zero init on its way up: the error stands."""
    report = _diagnose("cnn_no_norm.py:Net(width=256,blocks=6)")
    near = [l.name for l in report.layers if l.near_zero_weights]
    assert near == [f"blocks.{b}.depthwise" for b in range(6)]
    finding = _only(report, "vanishing")
    assert finding.severity is Severity.ERROR
    assert finding.evidence["rule"] == "magnitude"
    assert "near_zero_layers" not in finding.evidence


class GlobalCLS(torch.nn.Module):
    """Longformer's last layer in miniature: a local projection for every position, whose [CLS]
    row a global projection then overwrites, and a classifier reading [CLS] alone."""

    def __init__(self, vocab: int = 100, dim: int = 32, dead: bool = False) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, dim)
        self.body = torch.nn.Linear(dim, dim)
        self.local = torch.nn.Linear(dim, dim)
        self.glob = torch.nn.Linear(dim, dim)
        self.act = torch.nn.ReLU()
        self.head = torch.nn.Linear(dim, 3)
        if dead:  # every unit of the head's ReLU off: a real block
            with torch.no_grad():
                self.glob.bias.fill_(-100.0)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.body(self.embed(tokens)))
        out = self.local(h).clone()
        out[:, 0] = self.glob(h[:, 0])
        return self.head(self.act(out[:, 0]))


def test_a_layer_whose_positions_the_loss_never_reads_is_information() -> None:
    torch.manual_seed(0)
    report = diagnose(GlobalCLS(), lambda b: torch.randint(0, 100, (b, 12)))
    finding = _only(report, "no-gradient")
    assert finding.severity is Severity.INFO
    assert finding.evidence["reason"] == "not-read"
    assert finding.layers == ("local",)
    by_name = {l.name: l for l in report.layers}
    assert by_name["local"].partly_read and by_name["local"].out_grad_rms.high == 0.0
    assert by_name["local"].act_rms.median > 0.1
    # With every unit above dead, the same zeros are a real block: still an error.
    dead = diagnose(GlobalCLS(dead=True), lambda b: torch.randint(0, 100, (b, 12)))
    blocked = next(f for f in dead.findings if f.id == "no-gradient")
    assert blocked.severity is Severity.ERROR and blocked.evidence["reason"] == "blocked"


class ShapeIds(torch.nn.Module):
    """RoCBert's optional id streams: zeros (the padding index) when the caller gives none."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = torch.nn.Embedding(100, 16)
        self.shapes = torch.nn.Embedding(20, 16, padding_idx=0)
        self.head = torch.nn.Linear(16, 2)

    def forward(self, tokens: torch.Tensor, shape_ids: torch.Tensor | None = None) -> torch.Tensor:
        if shape_ids is None:
            shape_ids = torch.zeros_like(tokens)
        return self.head((self.tokens(tokens) + self.shapes(shape_ids)).mean(1))


def test_an_embedding_fed_only_its_padding_index_is_information() -> None:
    torch.manual_seed(0)
    report = diagnose(ShapeIds(), lambda b: torch.randint(1, 100, (b, 8)))
    finding = _only(report, "no-gradient")
    assert finding.severity is Severity.INFO
    assert finding.evidence["reason"] == "padding-only"
    assert finding.layers == ("shapes",)


# Plain PyTorch, run in a new interpreter on a model file or a saved model: 30 SGD steps
# (momentum 0.9, lr 0.01) on one fixed batch of 8 sequences; prints the loss before and after.
_SGD_30 = """
import json, sys, torch
sys.path.insert(0, sys.argv[1])
import transformer_no_norm as t
if sys.argv[2].endswith('.pt'):
    model = torch.load(sys.argv[2], weights_only=False)
else:
    torch.manual_seed(0)
    model = t.TinyGPT(norm=sys.argv[2] == 'norm', tie=sys.argv[2] == 'tied')
torch.manual_seed(1)
ids = t.example_inputs(8)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
losses = []
for step in range(31):
    loss = t.loss_fn(model(ids), ids)
    losses.append(loss.item())
    if step < 30:
        opt.zero_grad()
        loss.backward()
        opt.step()
print(json.dumps({"progress": (losses[0] - losses[-1]) / losses[0], "loss": losses[-1]}))
"""


def _sgd_progress(model: str, cwd: Path) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _SGD_30, str(SAMPLES), model],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return float(json.loads(done.stdout)["progress"])


@pytest.mark.slow
def test_a_transformer_without_its_layernorms_runs_at_the_embeddings_scale(
    tmp_path: Path,
) -> None:
    report = _diagnose("transformer_no_norm.py")
    finding = _only(report, "vanishing")
    assert finding.severity is Severity.WARNING
    assert finding.evidence["rule"] == "scale"
    weights = [l for l in report.layers if l.kind.value == "weight"]
    assert len(finding.layers) == len(weights) == 9
    largest = max(l.in_rms.median for l in weights)  # type: ignore[union-attr]
    assert finding.evidence["largest_input_rms"] == pytest.approx(largest)
    # The stream stays at the N(0, 0.02) embeddings' scale (two tables summed: 0.028).
    assert 0.02 < largest < 0.05
    assert finding.remedies[0] == "embedding-scale"
    # With its pre-LN blocks and final norm the same model is healthy: layers see RMS 1.
    healthy = _diagnose("transformer_no_norm.py:TinyGPT(norm=True)")
    assert healthy.findings == ()
    # The finding is what plain SGD measures: the model does not learn, its normed twin does.
    stuck = _sgd_progress("no-norm", tmp_path)
    normed = _sgd_progress("norm", tmp_path)
    assert stuck < 0.01 < 0.1 < normed


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.slow
def test_fix_gives_the_embeddings_unit_scale_and_sgd_then_learns(
    tied: bool, tmp_path: Path
) -> None:
    spec = "transformer_no_norm.py" + (":TinyGPT(tie=True)" if tied else "")
    # --learn 0: the sample's task (the next of uniformly random tokens) can be learned by no
    # model, so the learning probe would call every trial not-learning; SGD progress below is
    # this test's measure of training.
    done = run_in_new_process(
        "fix", str(SAMPLES / spec), "--output", "fixed", "--format", "json", "--learn", "0",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["chosen"] == ["embedding-scale"]
    assert result["after"]["status"] == "healthy"
    plan = yaml.safe_load((tmp_path / "fixed" / "plan.yaml").read_text(encoding="utf-8"))
    edits = [(e["op"], e["target"], e["args"]) for e in plan["edits"]]
    saved = torch.load(tmp_path / "fixed" / "state_dict.pt", weights_only=True)
    if tied:
        # The token table is also the output layer: its weights stay, its output is scaled
        # to unit RMS (1/0.02 = 50, within the draw's noise), so the logits keep their scale.
        (op, target, args), positions = edits
        assert (op, target) == ("scale-output", "tokens")
        assert args["factor"] == pytest.approx(50, rel=0.02)
        assert saved["tokens.weight"].std().item() == pytest.approx(0.02, abs=0.002)
        assert positions == ("init", "positions", {"scheme": "unit_normal"})
    else:
        assert edits == [
            ("init", "tokens", {"scheme": "unit_normal"}),
            ("init", "positions", {"scheme": "unit_normal"}),
        ]
        assert saved["tokens.weight"].std().item() == pytest.approx(1.0, abs=0.05)
    assert saved["blocks.0.qkv.weight"].std().item() == pytest.approx(0.02, abs=0.002)
    # Measured in a new process by plain PyTorch on the saved model (the hook travels with it):
    # the fixed model learns as the normed one does (19% in 30 steps), the original does not.
    fixed = _sgd_progress(str(tmp_path / "fixed" / "model.pt"), tmp_path)
    assert fixed > 0.1
    assert fixed > 10 * _sgd_progress("tied" if tied else "no-norm", tmp_path)


class SplitCLS(torch.nn.Module):
    """CvT's last stage in miniature: the query of the spatial tokens is their own projection,
    the [CLS] token attends over everything, a split takes [CLS] back off and the classifier
    reads it alone: the spatial query rows reach no loss. With ``zeroed``, a multiplier of zero
    (a bug) blocks a projection whose every split output the loss reads: still an error."""

    def __init__(self, dim: int = 16, zeroed: bool = False) -> None:
        super().__init__()
        self.embed = torch.nn.Linear(3, dim)
        self.query = torch.nn.Linear(dim, dim)
        self.key = torch.nn.Linear(dim, dim)
        self.cls = torch.nn.Parameter(torch.randn(1, 1, dim))
        self.head = torch.nn.Linear(dim, 3)
        self.zeroed = zeroed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        cls = self.cls.expand(len(x), -1, -1)
        q = torch.cat((cls, self.query(h) * (0.0 if self.zeroed else 1.0)), dim=1)
        k = torch.cat((cls, self.key(h)), dim=1)
        attended = torch.softmax(q @ k.transpose(1, 2), dim=-1) @ k
        first, rest = torch.split(attended, [1, h.shape[1]], dim=1)
        if self.zeroed:  # every output of the split read
            return self.head(first.squeeze(1) + rest.mean(1))
        return self.head(first.squeeze(1))


def test_a_projection_a_split_leaves_unread_is_information_and_a_zero_multiplier_is_not() -> None:
    torch.manual_seed(0)
    report = diagnose(SplitCLS(), lambda b: torch.randn(b, 9, 3))
    finding = _only(report, "no-gradient")
    assert finding.severity is Severity.INFO
    assert finding.evidence["reason"] == "not-read"
    assert finding.layers == ("query",)
    torch.manual_seed(0)
    zeroed = diagnose(SplitCLS(zeroed=True), lambda b: torch.randn(b, 9, 3))
    blocked = next(f for f in zeroed.findings if f.id == "no-gradient")
    assert blocked.severity is Severity.ERROR and blocked.evidence["reason"] == "blocked"
    assert blocked.layers == ("query",)


class PerLanguage(torch.nn.Module):
    """X-MOD's adapters in miniature: each example goes through the adapter of its language,
    picked by a boolean mask, so an adapter whose language the batch lacks runs on an empty
    tensor and gets an exactly zero gradient. ``dead`` puts a dead ReLU under the adapters: a
    zero gradient on rows that were there is still an error."""

    def __init__(self, dead: bool = False) -> None:
        super().__init__()
        self.embed = torch.nn.Linear(8, 16)
        self.adapters = torch.nn.ModuleDict({"en": torch.nn.Linear(16, 16),
                                             "de": torch.nn.Linear(16, 16)})  # fmt: skip
        self.head = torch.nn.Linear(16, 2)
        self.act = torch.nn.ReLU()
        self.dead = dead

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        language = torch.zeros(len(x), dtype=torch.long)  # every example in "en"
        out = torch.zeros_like(h)
        for index, key in enumerate(self.adapters):
            mask = language == index
            out[mask] = self.adapters[key](h[mask])
        if self.dead:
            out = self.act(out - 1e3)
        return self.head(out)


def test_an_adapter_dispatched_no_rows_is_information() -> None:
    torch.manual_seed(0)
    report = diagnose(PerLanguage(), lambda b: torch.randn(b, 8))
    finding = _only(report, "no-gradient")
    assert finding.severity is Severity.INFO and finding.evidence["reason"] == "no-rows"
    assert finding.layers == ("adapters.de",)
    assert {l.name: l.rows for l in report.layers}["adapters.de"] == 0
    torch.manual_seed(0)
    dead = diagnose(PerLanguage(dead=True), lambda b: torch.randn(b, 8))
    reasons = {f.evidence.get("reason"): f for f in dead.findings if f.id == "no-gradient"}
    assert reasons["no-rows"].layers == ("adapters.de",)
    assert reasons["blocked"].severity is Severity.ERROR
    assert "adapters.en" in reasons["blocked"].layers
