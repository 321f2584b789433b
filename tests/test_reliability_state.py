"""Nothing of the user's model changes, nothing of gradcheck stays on it, and a run that measured
nothing is not healthy (issue 11, items 3 and 13)."""

from __future__ import annotations

import gc
import io
import json
import pickle
import weakref

import pytest
import torch
import yaml
from torch import nn

from gradcheck_cli import diagnose, fix, watch
from gradcheck_cli.capture import capture
from gradcheck_cli.checks import run_checks
from gradcheck_cli.errors import ModelRunError, UsageError
from gradcheck_cli.findings import ExitCode, FailOn, Status, exit_code
from gradcheck_cli.hooks import Recorder
from gradcheck_cli.inputs.shapes import check_inferred_inputs
from gradcheck_cli.report import RENDERERS, OutputFormat
from gradcheck_cli.stats import ModelStats
from gradcheck_cli.temporal import PositionProfiler
from gradcheck_cli.watching import Watcher


def _alive(kind: type) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, kind))


def _hooks_on(tensor: torch.Tensor) -> int:
    return len(tensor._backward_hooks or {})


class Keeper(nn.Module):
    """A forward that rebinds a buffer, keeps its output, records history and caches a layer."""

    def __init__(self, *, fail_at: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(6, 6)
        self.out = nn.Linear(6, 3)
        self.register_buffer("ema", torch.zeros(6))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))
        self.last: torch.Tensor | None = None
        self.history: list[torch.Tensor] = []
        self.stats = {"calls": 0}
        self.plain = torch.ones(3)  # a tensor attribute that is not a buffer
        self.fail_at = fail_at

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        self.ema = 0.9 * self.ema + 0.1 * y.detach().mean(0)  # rebinds the buffer
        self.seen += 1  # in place
        self.plain.add_(1.0)  # in place, not a buffer
        self.last = y  # keeps a tensor that gradcheck hooks
        self.history.append(y)
        self.stats = {"calls": self.stats["calls"] + 1}
        if not hasattr(self, "cache"):
            self.cache = nn.Linear(3, 3)  # a lazily added submodule
            self.scratch = y  # an attribute the model did not have
        if self.fail_at is not None and int(self.seen) == self.fail_at:
            raise RuntimeError("boom")
        return self.out(torch.relu(y))


def _state(model: Keeper) -> dict[str, object]:
    return {
        "ema": model.ema,
        "seen": model.seen,
        "plain": model.plain,
        "last": model.last,
        "history": model.history,
        "stats": model.stats,
        "buffers": dict(model._buffers),
        "modules": dict(model._modules),
        "attributes": set(vars(model)),
        "state_dict": set(model.state_dict()),
    }


def _assert_unchanged(model: Keeper, before: dict[str, object]) -> None:
    assert model.ema is before["ema"] and torch.equal(model.ema, torch.zeros(6))
    assert model.seen is before["seen"] and int(model.seen) == 0
    assert model.plain is before["plain"] and torch.equal(model.plain, torch.ones(3))
    assert model.last is None
    assert model.history is before["history"] and model.history == []
    assert model.stats is before["stats"] and model.stats == {"calls": 0}
    assert dict(model._buffers) == before["buffers"]
    assert set(model._modules) == {"fc", "out"} and not hasattr(model, "cache")
    assert set(vars(model)) == before["attributes"]  # no "scratch"
    assert set(model.state_dict()) == before["state_dict"]
    assert {"ema", "seen"} <= set(model.state_dict()) and "cache.weight" not in model.state_dict()


# --- item 3: the user's model is left as it was, as the same objects ----------------------------


def test_diagnose_puts_back_rebound_buffers_kept_tensors_and_added_attributes() -> None:
    model = Keeper()
    before = _state(model)
    recorders = _alive(Recorder)

    report = diagnose(model, lambda b: torch.randn(b, 6), loss="mse", steps=3)

    assert report.layers  # it did measure
    _assert_unchanged(model, before)
    assert _alive(Recorder) == recorders  # nothing the model keeps holds a recorder


def test_state_is_put_back_when_forward_raises_midway() -> None:
    model = Keeper(fail_at=2)
    before = _state(model)
    with pytest.raises(ModelRunError, match="boom"):
        diagnose(model, lambda b: torch.randn(b, 6), loss="mse", steps=3)
    _assert_unchanged(model, before)


def test_a_kept_output_carries_no_gradcheck_hook_after_each_step() -> None:
    model = Keeper()
    with capture(model) as recorder:
        recorder.begin_step()
        model(torch.randn(4, 6)).pow(2).mean().backward()
        kept = model.last
        assert kept is not None and _hooks_on(kept) == 1  # gradcheck's, during the step
        recorder.end_step(torch.zeros(()))
        assert kept is not None and _hooks_on(kept) == 0  # removed when the step ends
        recorder.begin_step()
        model(torch.randn(4, 6))  # a forward whose backward never comes
        pending = model.last
        assert pending is not None and _hooks_on(pending) == 1
    assert _hooks_on(pending) == 0  # removed on exit


def test_watch_leaves_what_the_loop_keeps_without_hooks_or_watcher() -> None:
    model = Keeper()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    watchers, recorders = _alive(Watcher), _alive(Recorder)
    with watch(model, every=1) as w:
        for _ in range(3):
            optimizer.zero_grad()
            output = model(torch.randn(8, 6))
            output.pow(2).mean().backward()
            optimizer.step()
        assert len(w.records) == 3
        pending = model(torch.randn(8, 6))  # armed, never backpropagated
        # the output layer's gradient hook and the watcher's end-of-backward hook
        assert _hooks_on(pending) == 2 and _hooks_on(model.history[-1]) == 1
    report = w.report()
    assert "nothing-measured" not in {f.id for f in report.findings}
    # watch() does not own the training's state: what the loop kept stays, but bare
    assert model.last is model.history[-1] and len(model.history) == 4
    assert all(_hooks_on(t) == 0 for t in [*model.history, output, pending])
    assert int(model.seen) == 4
    del w, report
    assert _alive(Watcher) == watchers and _alive(Recorder) == recorders


def test_position_profiler_hooks_are_removed_with_it() -> None:
    torch.manual_seed(0)

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(20, 8)
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            self.kept = self.embed(tokens)
            return self.attn(self.kept, self.kept, self.kept)[0]

    model = Attention()
    with PositionProfiler.attach(model) as profiler:
        assert profiler is not None
        model(torch.randint(0, 20, (2, 12)))
        assert _hooks_on(model.kept) == 1
    assert _hooks_on(model.kept) == 0


class SigmoidKeeper(Keeper):
    """A Keeper with a deep sigmoid body: `fix` has something to cure (relu-swap)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(8):
            layers += [nn.Linear(6, 6), nn.Sigmoid()]
        self.fc = nn.Sequential(*layers)


def test_fix_leaves_the_original_and_its_result_free_of_what_forward_kept() -> None:
    # Besides the measured passes, fix runs the model in its probe (eval, no_grad) and in a
    # torch.fx trace, which used to leave self.last = Proxy(...) on the user's model and on the
    # fixed copy (which then could not be pickled by fix --output).
    model = SigmoidKeeper()
    before = _state(model)
    result = fix(model, lambda b: torch.randn(b, 6), loss="mse")
    assert result.chosen is not None and "relu-swap" in result.chosen.remedies
    _assert_unchanged(model, before)
    fixed = result.model
    assert fixed is not model and fixed.last is None and fixed.history == []
    assert not hasattr(fixed, "cache")
    pickle.loads(pickle.dumps(fixed))


def test_inferring_the_input_runs_forward_without_changing_the_model() -> None:
    model = Keeper()
    before = _state(model)
    shape = check_inferred_inputs(model)
    assert shape.flag() == "6"
    _assert_unchanged(model, before)


def test_an_embedding_with_max_norm_keeps_its_rows() -> None:
    # nn.Embedding(max_norm=...) renormalises the looked-up rows in place during forward.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(20, 8, max_norm=0.5), nn.Flatten(), nn.Linear(24, 2))
    weight = model[0].weight.detach().clone()
    diagnose(model, lambda b: torch.randint(0, 20, (b, 3)), loss="mse")
    assert torch.equal(model[0].weight, weight)


def test_torchscript_buffers_still_restored() -> None:
    model = torch.jit.script(nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2)))
    mean = model[1].running_mean.clone()
    diagnose(model, lambda b: torch.randn(b, 4), loss="mse")
    assert torch.equal(model[1].running_mean, mean)


# --- item 13: a run that measured nothing is an error, in every format ---------------------------


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def _nothing_finding(report):  # type: ignore[no-untyped-def]
    (finding,) = [f for f in report.findings if f.id == "nothing-measured"]
    return finding


def test_watch_in_eval_mode_is_an_error_not_healthy() -> None:
    model = _mlp().eval()
    with watch(model, every=1) as w:
        for _ in range(3):
            model(torch.randn(5, 4)).sum().backward()
    report = w.report()
    assert report.status is Status.ERROR
    assert [f.id for f in report.findings] == ["nothing-measured"]
    finding = _nothing_finding(report)
    assert "3 in eval() mode" in finding.message and finding.evidence["steps"] == 0
    assert report.run.steps == 0
    assert exit_code(report, FailOn.ERROR) is ExitCode.FINDINGS


def test_empty_watch_block_is_an_error() -> None:
    with watch(_mlp()) as w:
        pass
    finding = _nothing_finding(w.report())
    assert "no forward pass" in finding.message
    assert w.report().status is Status.ERROR


@pytest.mark.parametrize(
    ("run", "cause"),
    [
        ("no_grad", "2 under torch.no_grad()"),
        ("no_backward", "2 with no backward pass through the model's output"),
        ("manual_never_begun", "begin_step() was never called"),
    ],
)
def test_every_way_of_measuring_nothing_names_its_cause(run: str, cause: str) -> None:
    model = _mlp()
    with watch(model, every=1, manual=run.startswith("manual")) as w:
        for _ in range(2):
            if run == "no_grad":
                with torch.no_grad():
                    model(torch.randn(5, 4))
            elif run == "no_backward":
                model(torch.randn(5, 4))
            else:
                model(torch.randn(5, 4)).sum().backward()
                w.end_step()
    assert cause in _nothing_finding(w.report()).message


def test_a_measured_step_with_nothing_in_it_is_an_error() -> None:
    model = _mlp()
    with watch(model, manual=True) as w:
        w.begin_step(4)
        w.end_step()  # no forward, no backward in between
    report = w.report()
    assert report.run.steps == 1
    assert "1 step(s) were recorded, but no layer" in _nothing_finding(report).message
    assert report.status is Status.ERROR


def test_a_measured_watch_has_no_such_finding() -> None:
    model = _mlp()
    with watch(model, every=2) as w:
        for _ in range(4):
            model(torch.randn(16, 4)).pow(2).mean().backward()
    report = w.report()
    assert len(w.records) == 2 and report.run.steps == 2
    assert "nothing-measured" not in {f.id for f in report.findings}


def test_the_check_ignores_ignored_layers_but_not_missing_steps() -> None:
    assert run_checks(ModelStats(layers=(), losses=(), steps=3)) == []
    (finding,) = run_checks(ModelStats(layers=(), losses=(), steps=0))
    assert finding.id == "nothing-measured" and finding.severity.value == "error"


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_every_renderer_says_nothing_was_measured(fmt: OutputFormat, validate_report) -> None:  # type: ignore[no-untyped-def]
    model = _mlp().eval()
    with watch(model, every=1) as w:
        model(torch.randn(5, 4)).sum().backward()
    report = w.report()
    validate_report(report.to_dict())
    out = io.StringIO()
    RENDERERS[fmt](report, out, color=False, fail_on=FailOn.ERROR)
    text = out.getvalue()
    assert "nothing-measured" in text and "nothing was measured" in text
    if fmt is OutputFormat.YAML:
        assert yaml.safe_load(text)["status"] == "error"
    elif fmt is OutputFormat.JSON:
        assert json.loads(text)["status"] == "error"
    elif fmt is OutputFormat.JUNIT:
        assert "<failure" in text
    elif fmt is OutputFormat.GITHUB:
        assert "::error" in text
    elif fmt is OutputFormat.RICH:
        assert " ERROR " in text and "HEALTHY" not in text
    else:
        assert text.startswith("## gradcheck: 🔴 error")


def test_the_recorder_is_freed_although_the_model_keeps_an_output() -> None:
    model = Keeper()
    captured: list[weakref.ReferenceType[Recorder]] = []
    with capture(model) as recorder:
        captured.append(weakref.ref(recorder))
        recorder.begin_step()
        model(torch.randn(4, 6)).pow(2).mean().backward()
        recorder.end_step(torch.zeros(()))
    del recorder
    gc.collect()
    assert captured[0]() is None


class _ChangesGlobals(nn.Module):
    """A forward that changes process-wide torch settings, as some research code does."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.set_default_dtype(torch.float64)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.set_float32_matmul_precision("medium")
        torch.backends.cudnn.benchmark = not torch.backends.cudnn.benchmark
        return self.fc(x.float())


def test_global_torch_settings_a_forward_changes_are_put_back() -> None:
    before = (
        torch.get_default_dtype(),
        torch.are_deterministic_algorithms_enabled(),
        torch.get_float32_matmul_precision(),
        torch.backends.cudnn.benchmark,
        torch.is_grad_enabled(),
    )
    diagnose(_ChangesGlobals(), lambda b: torch.randn(b, 8))
    after = (
        torch.get_default_dtype(),
        torch.are_deterministic_algorithms_enabled(),
        torch.get_float32_matmul_precision(),
        torch.backends.cudnn.benchmark,
        torch.is_grad_enabled(),
    )
    assert after == before


class _ClipsItsWeights(nn.Module):
    """WGAN-style weight clipping inside forward: the weights are written in place under
    no_grad (their version counter moves; autograd does not see it)."""

    def __init__(self) -> None:
        super().__init__()
        self.critic = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            for p in self.critic.parameters():
                p.clamp_(-0.01, 0.01)
        return self.critic(x)


def test_weights_a_forward_writes_in_place_are_put_back() -> None:
    torch.manual_seed(0)
    model = _ClipsItsWeights()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert max(float(v.abs().max()) for v in before.values()) > 0.1  # clipping would show
    diagnose(model, torch.randn(8, 8), steps=2)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    weights = [p for p in model.parameters()]
    fix(model, torch.randn(8, 8), steps=1, learn=0)
    assert all(p is q for p, q in zip(model.parameters(), weights, strict=True))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_model_measured_in_one_thread_is_refused_in_another() -> None:
    # Two threads' hooks on one model would mix their steps (one failed with an index_add_
    # size error): the second is refused with advice; the first runs undisturbed.
    import threading

    inside, go = threading.Event(), threading.Event()

    class Waits(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.l = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            inside.set()
            go.wait(timeout=60)
            return self.l(x)

    model = Waits()
    outcome: list[object] = []
    worker = threading.Thread(
        target=lambda: outcome.append(diagnose(model, torch.randn(8, 4), steps=1, learn=0))
    )
    worker.start()
    try:
        assert inside.wait(timeout=60)
        with pytest.raises(UsageError, match="being measured by another thread"):
            diagnose(model, torch.randn(8, 4), steps=1, learn=0)
        other = nn.Sequential(nn.Linear(4, 2))  # another model is not held up
        assert diagnose(other, torch.randn(8, 4), steps=1, learn=0).layers[0].name == "0"
    finally:
        go.set()
        worker.join(timeout=120)
    (report,) = outcome
    assert [layer.name for layer in report.layers] == ["l"]  # type: ignore[attr-defined]
    assert diagnose(model, torch.randn(8, 4), steps=1, learn=0).layers[0].name == "l"  # released


def test_objects_and_nested_tensors_forward_changes_in_place_are_put_back() -> None:
    import types

    class Counts(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.l = nn.Linear(4, 2)
            self.cfg = types.SimpleNamespace(calls=0, seen=[])
            self.history = [{"sum": torch.zeros(2), "n": 0}]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.l(x)
            self.cfg.calls += 1  # rebinds an attribute of a plain object
            self.cfg.seen.append(x.shape[0])  # a list inside it, in place
            self.history[0]["sum"] += y.detach().sum(0)  # a tensor in a dict in a list, in place
            self.history[0]["n"] += 1
            return y

    model = Counts()
    cfg, seen, entry, total = model.cfg, model.cfg.seen, model.history[0], model.history[0]["sum"]
    diagnose(model, torch.randn(8, 4), steps=2, learn=0)
    assert model.cfg is cfg and cfg.calls == 0 and cfg.seen is seen and seen == []
    assert model.history[0] is entry and entry["n"] == 0
    assert entry["sum"] is total and torch.equal(total, torch.zeros(2))
