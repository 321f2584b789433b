"""Ground truth for the zoo sweep's pathological twins: does a twin actually train worse?

    OMP_NUM_THREADS=1 /work/zoo-venv/bin/python scripts/twin_truth.py            # run + report
    OMP_NUM_THREADS=1 /work/zoo-venv/bin/python scripts/twin_truth.py --report   # report only
    OMP_NUM_THREADS=1 /work/zoo-venv/bin/python scripts/twin_truth.py --one KEY --out F.json

For a sample of models the sweep (``bench/sweep.yaml``) found healthy, the original and each of
its three twins (``scripts/sweep_worker.py``: sigmoid, small-init, no-norm) are trained with
plain SGD (momentum 0.9, lr 0.01, no gradient clipping) for 30 steps on one fixed batch (the
batch and loss of the sweep's diagnosis step 0: same input factory, same seed, same ``auto``
loss with the same random targets). Relative progress = (loss0 - loss30) / loss0. A twin is
pathological when it diverges (non-finite loss) or its progress is below half the original's.
The original must make > 5 % progress; if it does not at lr 0.01, lr 0.1 and 0.001 are tried
and the best lr of the original is used for the twins. Each twin is also diagnosed by
gradcheck exactly as the sweep does (``sweep_worker.run_diagnosis``).

Each model runs in its own process (one thread) under a time limit; 2 at a time.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sweep_worker as sw  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ROOT / "bench" / "sweep.yaml"
OUT_YAML = ROOT / "bench" / "twins.yaml"
OUT_MD = ROOT / "bench" / "twins.md"
CACHE = Path("/tmp/twin_truth")

STEPS = 30
LR = 0.01
RETRY_LRS = (0.1, 0.001)
MOMENTUM = 0.9
MIN_PROGRESS = 0.05
SEED = 0
BATCH = 2
TIMEOUT_S = 150
MAX_PARAMS = 150_000_000  # the sweep's default budget

SAMPLE = [
    # Hugging Face: different architectures and tasks
    "hf:LlamaForSequenceClassification",
    "hf:EsmcForMaskedLM",
    "hf:MobileNetV2ForImageClassification",
    "hf:ElectraForCausalLM",
    "hf:AlbertForMaskedLM",
    "hf:T5ForConditionalGeneration",
    "hf:GPTNeoXForCausalLM",
    "hf:MixtralForCausalLM",
    "hf:PvtForImageClassification",
    "hf:WhisperForCausalLM",
    # torchvision classification
    "torchvision:vgg11_bn",
    "torchvision:resnet18",
    "torchvision:resnet34",
    "torchvision:mobilenet_v2",
    "torchvision:efficientnet_b0",
    "torchvision:vit_l_32",
    "torchvision:convnext_tiny",
    "torchvision:shufflenet_v2_x1_0",
    "torchvision:mnasnet0_5",
    "torchvision:squeezenet1_1",
    # timm: one per family
    "timm:lcnet_035",
    "timm:mobilenetv3_small_050",
    "timm:ghostnet_050",
    "timm:deit_tiny_patch16_224",
    "timm:convnextv2_atto",
    "timm:levit_128s",
    "timm:legacy_seresnet18",
    "timm:dla34",
    "timm:gmlp_ti16_224",
    "timm:mobilevit_xxs",
]


# --- one model (child process) -------------------------------------------------------------------


def _job(key: str, entry: dict[str, Any], max_params: int) -> dict[str, Any]:
    zoo, _, name = key.partition(":")
    job = {
        "key": key,
        "zoo": zoo,
        "name": name,
        "seed": SEED,
        "steps": 3,
        "batch_size": BATCH,
        "max_params": max_params,
    }
    for field in ("class", "kind", "task"):
        if field in entry:
            job[field] = entry[field]
    return job


def train(model: torch.nn.Module, built: sw.Built, lr: float) -> dict[str, Any]:
    """30 SGD steps on the step-0 batch of the sweep; losses at step 0 and 30."""
    from gradcheck_cli.choices import LossKind
    from gradcheck_cli.measure import Passes
    from gradcheck_cli.pipeline import input_factory

    device = torch.device("cpu")
    _, inputs, loss_fn = built
    passes = Passes(
        model, input_factory(model, inputs, device), loss_fn, LossKind.AUTO, SEED, BATCH, device
    )
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=MOMENTUM)
    model.train()
    losses: list[float] = []
    started = time.perf_counter()
    for step in range(STEPS + 1):
        # Same seed every step: the same batch, the same random targets, the same dropout masks.
        with passes.seeded(0):
            batch = passes.inputs()
            value, used = passes.loss_of(passes.forward(batch), batch)
        loss = float(value.detach().float())
        losses.append(loss)
        if not math.isfinite(loss):
            break
        if step == STEPS:
            break
        opt.zero_grad(set_to_none=True)
        value.reshape(()).float().backward()
        opt.step()
    out: dict[str, Any] = {
        "lr": lr,
        "loss0": losses[0],
        "loss30": losses[-1],
        "seconds": round(time.perf_counter() - started, 1),
        "losses": [float(f"{v:.4g}") for v in losses[:: max(1, STEPS // 10)]],
    }
    out["floor"] = constant_floor(passes, used)
    if not all(math.isfinite(v) for v in losses):
        out["diverged"] = True
        out["progress"] = None
        out["diverged_at"] = len(losses) - 1
    else:
        out["diverged"] = False
        out["progress"] = (losses[0] - losses[-1]) / losses[0] if losses[0] else 0.0
    return out


def _entropy(labels: torch.Tensor) -> float | None:
    labels = labels.reshape(-1)
    labels = labels[labels >= 0]  # -100: ignored positions
    if labels.numel() == 0:
        return None
    _, counts = torch.unique(labels, return_counts=True)
    p = counts.double() / counts.sum()
    return float(-(p * p.log()).sum())


def constant_floor(passes: Any, used: str) -> float | None:
    """The lowest cross-entropy an output that ignores the inputs can reach on this batch: the
    entropy of the batch's label distribution (ln 2 for two distinct labels). None when the
    loss is not a cross-entropy against labels we can read back."""
    from gradcheck_cli.inputs.calling import class_dim, own_loss, primary_output

    try:
        with torch.no_grad(), passes.seeded(0):
            batch = passes.inputs()
            output = passes.forward(batch)
            if used == "cross-entropy" and own_loss(output) is None:
                y = primary_output(output)
                dim = class_dim(y)
                if dim is None:
                    return None
                shape = (y.shape[0], *[n for i, n in enumerate(y.shape) if i not in (0, dim)])
                return _entropy(torch.randint(0, y.shape[dim], shape, device=y.device))
        if used == "model-output-loss" and isinstance(batch, dict) and "labels" in batch:
            labels = batch["labels"]
            if not isinstance(labels, torch.Tensor) or labels.is_floating_point():
                return None
            if labels.dim() == 2 and "CausalLM" in type(passes.model).__name__:
                labels = labels[:, 1:]  # the model shifts its labels by one
            return _entropy(labels)
    except Exception:
        return None
    return None


def _score(run: dict[str, Any]) -> float:
    return -math.inf if run["diverged"] else run["progress"]


def one(key: str, out_path: Path) -> None:
    import warnings

    import yaml

    warnings.filterwarnings("ignore")
    sw._no_downloads()
    # bench/sweep.yaml may be rewritten by a sweep in progress: read what is there, fall back
    # on the sweep's defaults (every torchvision model of the sample is a classifier).
    doc = yaml.safe_load(SWEEP.read_text(encoding="utf-8")) or {}
    entry = (doc.get("models") or {}).get(key) or {}
    zoo_name, _, name = key.partition(":")
    entry = {"class": name} if zoo_name == "hf" else entry
    if zoo_name == "torchvision":
        entry = {"kind": "classification"}
    settings = (doc.get("sweep") or {}).get("settings") or {}
    job = _job(key, entry, int(settings.get("max_params", MAX_PARAMS)))
    result: dict[str, Any] = {"key": key, "twins": {}}

    def save() -> None:
        tmp = out_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, default=str), encoding="utf-8")
        os.replace(tmp, out_path)

    started = time.perf_counter()
    zoo = sw.ZOOS[job["zoo"]](job)
    zoo.plan_build(job["max_params"])
    built = zoo.build()
    base = copy.deepcopy(built[0].state_dict())
    result["params"] = sw._count(built[0])
    if zoo.plan.get("cut"):
        result["reduced"] = "blocks cut: " + ", ".join(zoo.plan["cut"])

    def fresh() -> torch.nn.Module:
        model = copy.deepcopy(built[0])
        model.load_state_dict(base)
        return model

    runs = {LR: train(fresh(), built, LR)}
    if _score(runs[LR]) <= MIN_PROGRESS:
        for lr in RETRY_LRS:
            runs[lr] = train(fresh(), built, lr)
    lr = max(runs, key=lambda k: _score(runs[k]))
    result["original"] = runs[lr]
    result["original_tried"] = {str(k): v["progress"] for k, v in runs.items()}
    result["lr"] = lr
    result["original_learns"] = _score(runs[lr]) > MIN_PROGRESS
    save()
    for twin in sw.TWINS:
        entry_t: dict[str, Any] = {}
        result["twins"][twin] = entry_t
        try:
            model = fresh()
            changed = sw.TRANSFORMS[twin](model)
            entry_t["changed"] = changed
            if changed == 0:
                entry_t["verdict"] = "n/a"
                continue
            d = sw.run_diagnosis((model, built[1], built[2]), job, f"{key} ({twin} twin)", None)
            entry_t["gradcheck"] = [f"{f['id']}:{f['severity']}" for f in d["findings"]]
            entry_t["gradcheck_info"] = [f["id"] for f in d["info"]]
            entry_t["gradcheck_status"] = d["status"]
            save()
            entry_t["train"] = train(model, built, lr)
        except Exception as exc:  # a twin that cannot run: recorded, not fatal
            entry_t["error"] = f"{type(exc).__name__}: {sw._first_line(exc)}"
        save()
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["done"] = True
    save()


# --- driver ----------------------------------------------------------------------------------------


def run_all(keys: list[str], jobs: int, timeout: int) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)

    def run_one(key: str) -> None:
        out = CACHE / (key.replace(":", "__") + ".json")
        if out.is_file():
            old = json.loads(out.read_text())
            if old.get("done") or str(old.get("note", "")).startswith("timeout"):
                return
        started = time.monotonic()
        cmd = [sys.executable, __file__, "--one", key, "--out", str(out)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        note = None
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
            if proc.returncode:
                note = f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"
        except subprocess.TimeoutExpired:
            note = f"timeout after {timeout} s"
        if note:
            data = json.loads(out.read_text()) if out.is_file() else {"key": key, "twins": {}}
            data["note"] = note
            out.write_text(json.dumps(data, default=str), encoding="utf-8")
        print(
            f"{key}: {time.monotonic() - started:.0f} s {note or ''}", file=sys.stderr, flush=True
        )

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(run_one, keys))


def verdict(result: dict[str, Any], twin: str) -> dict[str, Any]:
    """pathological yes/no/diverged (or why not judged), gradcheck's verdict, agreement."""
    t = result.get("twins", {}).get(twin)
    orig = result.get("original")
    row: dict[str, Any] = {"model": result["key"]}
    if orig:
        row["original"] = orig["progress"]
        row["lr"] = result["lr"]
    if t is None:
        row["pathological"] = "not run"
        return row
    if t.get("verdict") == "n/a":
        row["pathological"] = "n/a"
        return row
    if "gradcheck" in t:
        flagged = [g.split(":")[0] for g in t["gradcheck"]]
        row["flagged"] = bool(flagged)
        row["gradcheck"] = ", ".join(t["gradcheck"]) if flagged else "healthy"
        row["info"] = t.get("gradcheck_info", [])
    tr = t.get("train")
    if tr is None:
        row["pathological"] = "error" if "error" in t else "not run"
        row["why"] = t.get("error") or result.get("note", "")
        return row
    row["twin"] = tr["progress"]
    if not result.get("original_learns"):
        row["pathological"] = "original does not learn"
        return row
    if tr["diverged"]:
        row["pathological"] = "diverged"
    elif tr["progress"] < 0.5 * orig["progress"]:
        row["pathological"] = "yes"
    else:
        row["pathological"] = "no"
    # Secondary: a twin whose loss stalls at the constant-output floor (it learnt the batch's
    # labels, not the inputs) while the original memorises well below it.
    floor = orig.get("floor")
    row["floor"] = floor
    row["orig_loss30"] = orig["loss30"]
    row["twin_loss30"] = tr["loss30"]
    row["blind"] = bool(
        floor
        and not tr["diverged"]
        and orig["loss30"] < 0.5 * floor
        and tr["loss30"] >= 0.9 * floor
    )
    if "flagged" in row:
        for key, truth in (
            ("agreement", row["pathological"] in ("yes", "diverged")),
            ("agreement_strict", row["pathological"] in ("yes", "diverged") or row["blind"]),
        ):
            if key == "agreement_strict" and floor is not None and floor < 1e-6:
                row[key] = "n/a (trivial batch)"  # one label: a constant output fits it
                continue
            row[key] = (
                ("detected" if row["flagged"] else "MISSED")
                if truth
                else ("FALSE ALARM" if row["flagged"] else "agree (healthy)")
            )
    return row


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.3g}"


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def report(keys: list[str], wall: float | None) -> None:
    import yaml

    results = []
    for key in keys:
        path = CACHE / (key.replace(":", "__") + ".json")
        results.append(
            json.loads(path.read_text()) if path.is_file() else {"key": key, "note": "not run"}
        )
    settings = {
        "optimizer": f"SGD(momentum={MOMENTUM}), no gradient clipping",
        "lr": LR,
        "retry_lrs": list(RETRY_LRS),
        "steps": STEPS,
        "batch": f"one fixed batch of {BATCH}: the sweep's step-0 batch (seed {SEED})",
        "min_original_progress": MIN_PROGRESS,
        "pathological": "diverged, or twin progress < 0.5 x original progress",
        "timeout_per_model_s": TIMEOUT_S,
        "torch": str(torch.__version__),
    }
    OUT_YAML.write_text(
        yaml.safe_dump({"settings": settings, "models": results}, sort_keys=False, width=100),
        encoding="utf-8",
    )
    lines = [
        "# Are the sweep's pathological twins actually pathological?",
        "",
        "Generated by `scripts/twin_truth.py` (raw numbers: `bench/twins.yaml`).",
        "",
        "## Method",
        "",
        f"- Sample: {len(keys)} models the zoo sweep (`bench/sweep.yaml`) found healthy: "
        "10 Hugging Face (different architectures and tasks), 10 torchvision classification, "
        "10 timm families; built exactly as the sweep builds them (`sweep_worker.ZOOS`, same "
        "reduced configs, seed 0), and their three twins built by `sweep_worker.TRANSFORMS` "
        "(sigmoid: every activation module -> `nn.Sigmoid`; small-init: every weight of 2+ dims "
        "x 0.01; no-norm: normalisation layers -> identity).",
        f"- Trainability (plain PyTorch, no gradcheck rule): {STEPS} steps of SGD (momentum "
        f"{MOMENTUM}, lr {LR}, gradient clipping off) on ONE fixed batch of {BATCH} "
        f"(memorisation): the sweep's diagnosis batch of step 0 (seed {SEED}: same input factory, "
        "same `auto` loss - the model's own loss for Hugging Face, cross-entropy against the "
        "seeded random labels otherwise), recomputed under the same seed each step, so inputs, "
        "targets and dropout masks are identical at every step; model in train mode.",
        f"- Relative progress = (loss0 - loss{STEPS}) / loss0, loss0 before the first update, "
        f"loss{STEPS} after the last. NaN/Inf loss = diverged.",
        f"- The original must make > {MIN_PROGRESS:.0%} progress; if it does not at lr {LR}, lr "
        f"{RETRY_LRS[0]} and {RETRY_LRS[1]} are tried on the original and its best lr is used "
        "for the twins (the lr column).",
        "- **Pathological twin**: it diverges, or its relative progress is below half of the "
        "original's.",
        "- Secondary, **strict** measure (not part of the brief's definition, reported beside "
        "it): with a batch of 2 and random labels, a model that ignores its inputs can still "
        "cut the loss from ln(classes) to the entropy of the batch's labels (ln 2 for two "
        "distinct labels; for Hugging Face, the entropy of the batch's label tokens) by "
        "learning the output bias alone, which the relative progress counts as 90 %+. A twin "
        "is **input-blind** when the original ends below half this constant-output floor and "
        f"the twin's loss{STEPS} stays at or above 0.9 x the floor; strict pathological = "
        "pathological or input-blind. A batch whose labels are all equal (floor 0) is left out "
        "of the strict counts (trivial batch).",
        "- gradcheck verdict: the twin (before training) diagnosed exactly as the sweep does "
        "(`sweep_worker.run_diagnosis`: `diagnose(steps=3, seed=0, batch_size=2, device='cpu')`); "
        "flagged = a finding at warning or error.",
        f"- One process per model, 1 thread, 2 models at a time, {TIMEOUT_S} s per model (a model "
        "cut short keeps the twins it finished).",
    ]
    if wall is not None:
        lines.append(f"- Wall time of this run: {wall / 60:.1f} min.")
    summary = ["", "## Summary", ""]
    tables = []
    missed_lines: list[str] = []
    for twin in sw.TWINS:
        rows = [verdict(r, twin) for r in results]
        judged = [r for r in rows if "agreement" in r]
        other = [r for r in rows if "agreement" not in r]
        for label, key in (("by the definition", "agreement"), ("strict", "agreement_strict")):
            truth = [r for r in judged if r[key] in ("detected", "MISSED")]
            detected = [r for r in truth if r["flagged"]]
            healthy = [r for r in judged if r[key] in ("FALSE ALARM", "agree (healthy)")]
            alarms = [r for r in healthy if r["flagged"]]
            ids: dict[str, int] = {}
            for r in alarms:
                for g in r["gradcheck"].split(", "):
                    ids[g] = ids.get(g, 0) + 1
            rate = f"{len(detected) / len(truth):.0%}" if truth else "-"
            head = (
                f"- **{twin}** ({label}): "
                if key == "agreement"
                else "  - strict (pathological, or input-blind: stalls at the constant-output "
                "floor): "
            )
            judged_note = (
                f"judged {len(judged)} of {len(rows)}"
                + (
                    f" (not judged: {', '.join(sorted({r['pathological'] for r in other}))})"
                    if other
                    else ""
                )
                + "; "
                if key == "agreement"
                else ""
            )
            summary.append(
                head
                + judged_note
                + f"(a) truly pathological **{len(truth)}**"
                + (
                    f" ({sum(r['pathological'] == 'diverged' for r in truth)} diverged)"
                    if key == "agreement"
                    else ""
                )
                + (
                    f" ({len(judged) - len(truth) - len(healthy)} trivial batches left out)"
                    if key != "agreement" and len(judged) - len(truth) - len(healthy)
                    else ""
                )
                + f"; (b) gradcheck detects **{len(detected)} of {len(truth)} = {rate}**; "
                f"(c) not pathological {len(healthy)}, gradcheck flags **{len(alarms)}** "
                "(false alarms)"
                + (": " + ", ".join(f"{k} x{v}" for k, v in sorted(ids.items())) if ids else "")
                + "."
            )
        for r in judged:
            if r["agreement_strict"] == "MISSED":
                missed_lines.append(
                    f"- `{r['model']}` **{twin}**: twin progress {_pct(r['twin'])} vs original "
                    f"{_pct(r['original'])}; loss{STEPS} {_num(r['twin_loss30'])} vs "
                    f"{_num(r['orig_loss30'])} (constant-output floor {_num(r['floor'])})"
                    + (" - input-blind only" if r["agreement"] != "MISSED" else "")
                    + f"; gradcheck: {r['gradcheck']}"
                    + (f" (info: {', '.join(r['info'])})" if r.get("info") else "")
                )
        tables += [
            "",
            f"## Twin: {twin}",
            "",
            "| model | lr | original progress | twin progress | pathological | "
            f"loss{STEPS} orig / twin / floor | input-blind | gradcheck on twin | agreement | "
            "agreement (strict) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            losses = (
                f"{_num(r['orig_loss30'])} / {_num(r['twin_loss30'])} / {_num(r['floor'])}"
                if "twin_loss30" in r
                else "-"
            )
            tables.append(
                f"| `{r['model']}` | {r.get('lr', '-')} | {_pct(r.get('original'))} | "
                f"{_pct(r.get('twin'))} | {r['pathological']} | {losses} | "
                f"{'yes' if r.get('blind') else ('no' if 'blind' in r else '-')} | "
                f"{r.get('gradcheck', '-')} | "
                f"{r.get('agreement', r.get('why', '-'))} | {r.get('agreement_strict', '-')} |"
            )
    if missed_lines:
        summary += ["", "### Pathological twins gradcheck missed", "", *missed_lines]
    notes = [f"- `{r['key']}`: {r['note']}" for r in results if r.get("note")]
    if notes:
        tables += ["", "## Notes (models cut short or skipped)", "", *notes]
    OUT_MD.write_text("\n".join(lines + summary + tables) + "\n", encoding="utf-8")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--one", help="run one model (child process)")
    p.add_argument("--out", type=Path)
    p.add_argument("--report", action="store_true", help="only rewrite the report")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--timeout", type=int, default=TIMEOUT_S)
    p.add_argument("--models", nargs="*", help="model keys (default: the built-in sample)")
    args = p.parse_args()
    if args.one:
        one(args.one, args.out)
        return 0
    keys = args.models or SAMPLE
    wall = None
    if not args.report:
        started = time.monotonic()
        run_all(keys, args.jobs, args.timeout)
        wall = time.monotonic() - started
    report(keys, wall)
    return 0


if __name__ == "__main__":
    sys.exit(main())
