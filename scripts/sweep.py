"""Zoo sweep: diagnose every model the installed zoos build offline, and its pathological twins.

    python scripts/sweep.py                                   # everything, about an hour or more
    python scripts/sweep.py --zoo torchvision --only 'resnet|vgg'
    python scripts/sweep.py --resume                          # only what bench/sweep.yaml lacks
    python scripts/sweep.py --table-only                      # re-render bench/sweep.md

Zoos: Hugging Face ``transformers`` model classes of the causal LM, masked LM, seq2seq LM,
sequence classification and image classification auto-mappings (built from their default config,
offline); torchvision classification, segmentation and detection builders (``weights=None``,
``weights_backbone=None``); one timm model per family (the family's smallest variant by parameter
count, ``pretrained=False``). Nothing is downloaded.

Each model runs in a worker process (``scripts/sweep_worker.py``, one thread each) with a time
limit per stage: counting parameters on the meta device (a model over ``--max-params`` is rebuilt
with 2 layers, then narrower, and the report says how, or skipped), the diagnosis through
``gradcheck_cli.api.diagnose`` (batch 2, 32 tokens, the zoo's image size), and for a model that
comes out healthy three twins that must be detected at warning or error: every activation module
replaced by ``nn.Sigmoid``, every weight of 2+ dimensions multiplied by 0.01, every normalisation
layer replaced by an identity. Results go to ``--out`` (YAML, written after every model, so
``--resume`` continues an interrupted run) and the table to ``--table`` (Markdown).

Order, so that a run cut short has covered what matters most: one Hugging Face class per
architecture, torchvision classification, timm families, torchvision segmentation and detection,
then the other Hugging Face tasks of architectures already covered.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gradcheck_cli.atomic import write_atomic  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "sweep_worker.py"
TWINS = ("sigmoid", "small-init", "no-norm")
HF_TASKS = (
    ("causal-lm", "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"),
    ("masked-lm", "MODEL_FOR_MASKED_LM_MAPPING_NAMES"),
    ("seq2seq-lm", "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES"),
    ("sequence-classification", "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES"),
    ("image-classification", "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES"),
)
TV_KINDS = ("classification", "segmentation", "detection")
# Priority of each group: a run cut short has done the lower numbers.
PRIORITY = {
    "hf-arch": 0,
    "torchvision-classification": 1,
    "timm": 2,
    "torchvision-segmentation": 3,
    "torchvision-detection": 4,
    "hf-task": 5,
}
RECYCLE_AFTER = 25  # jobs per worker process before a fresh one (bounded memory growth)


@dataclass
class Job:
    key: str
    zoo: str
    name: str
    group: str
    extra: dict[str, Any] = field(default_factory=dict)


# --- enumeration ---------------------------------------------------------------------------------


def hf_jobs() -> list[Job]:
    """One job per model class; the first task of each architecture comes first."""
    import transformers
    from transformers.models.auto import modeling_auto

    jobs, seen, archs = [], set(), set()
    for task, mapping_name in HF_TASKS:
        mapping = getattr(modeling_auto, mapping_name, {})
        for arch, class_name in mapping.items():
            if isinstance(class_name, (list, tuple)):
                class_name = class_name[0]
            if class_name in seen or getattr(transformers, class_name, None) is None:
                continue
            seen.add(class_name)
            group = "hf-task" if arch in archs else "hf-arch"
            archs.add(arch)
            jobs.append(
                Job(
                    f"hf:{class_name}",
                    "hf",
                    class_name,
                    group,
                    {"class": class_name, "task": task, "arch": arch},
                )
            )
    return jobs


def torchvision_jobs() -> list[Job]:
    import torchvision

    jobs = []
    for kind in TV_KINDS:
        module = (
            torchvision.models if kind == "classification" else getattr(torchvision.models, kind)
        )
        for name in torchvision.models.list_models(module=module):
            jobs.append(
                Job(
                    f"torchvision:{name}",
                    "torchvision",
                    name,
                    f"torchvision-{kind}",
                    {"kind": kind},
                )
            )
    return jobs


SIZE_WORDS = (
    "atto femto pico nano tiny xxs xs xsmall mini small s medium m base b large l xl xxl huge h "
    "giant g gigantic e"
).split()
MODIFIERS = ("tf", "gluon", "legacy")


def timm_family(name: str) -> str:
    """``resnet50d`` -> resnet, ``tf_efficientnet_b0`` -> tf_efficientnet, ``convnextv2_atto`` ->
    convnextv2: the first word, trailing digits (and one letter after them) dropped."""
    words = name.split("_")
    if words[0] in MODIFIERS and len(words) > 1:
        return words[0] + "_" + timm_family("_".join(words[1:]))
    head = words[0]
    if re.search(r"v\d+$", head):
        return head
    return re.sub(r"\d+[a-z]?$", "", head) or head


def _name_rank(name: str) -> tuple[Any, ...]:
    words = re.split(r"[_\-.]", name)
    sizes = [SIZE_WORDS.index(w) for w in words if w in SIZE_WORDS]
    numbers = [int(n) for n in re.findall(r"\d+", name)]
    return (min(sizes) if sizes else SIZE_WORDS.index("base"), len(words), numbers, name)


def timm_jobs(cache_dir: Path, candidates: int = 3) -> list[Job]:
    """One model per family: of the ``candidates`` smallest-named variants, the fewest params."""
    import timm
    import torch

    cache_path = cache_dir / f"timm-{timm.__version__}-params.json"
    cache: dict[str, Any] = {}
    if cache_path.is_file():
        cache = json.loads(cache_path.read_text(encoding="utf-8"))
    families: dict[str, list[str]] = {}
    for name in timm.list_models():
        if not name.startswith("test_"):
            families.setdefault(timm_family(name), []).append(name)
    jobs = []
    for family, names in sorted(families.items()):
        shortlist = sorted(names, key=_name_rank)[:candidates]
        for name in shortlist:
            if name not in cache:
                try:
                    with torch.device("meta"):
                        model = timm.create_model(name, pretrained=False)
                    cache[name] = sum(p.numel() for p in model.parameters())
                except Exception as exc:
                    cache[name] = f"{type(exc).__name__}: {exc}"[:200]
        counted = [n for n in shortlist if isinstance(cache[n], int)]
        chosen = min(counted, key=lambda n: cache[n]) if counted else shortlist[0]
        jobs.append(
            Job(
                f"timm:{chosen}",
                "timm",
                chosen,
                "timm",
                {"family": family, "variants": len(names)},
            )
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache_path.write_text(json.dumps(cache, indent=0, sort_keys=True), encoding="utf-8")
    return jobs


def enumerate_jobs(zoos: list[str], cache_dir: Path) -> list[Job]:
    jobs: list[Job] = []
    if "hf" in zoos:
        jobs += hf_jobs()
    if "torchvision" in zoos:
        jobs += torchvision_jobs()
    if "timm" in zoos:
        jobs += timm_jobs(cache_dir)
    order = {id(j): i for i, j in enumerate(jobs)}
    return sorted(jobs, key=lambda j: (PRIORITY[j.group], order[id(j)]))


# --- running -------------------------------------------------------------------------------------


class Worker:
    """A persistent ``sweep_worker.py --serve`` process; killed and replaced on a timeout."""

    def __init__(self, log_dir: Path, index: int):
        self.log_dir = log_dir
        self.index = index
        self.proc: subprocess.Popen[str] | None = None
        self.jobs = 0
        self.starts = 0

    def ensure(self) -> subprocess.Popen[str]:
        if self.proc is not None and (self.proc.poll() is not None or self.jobs >= RECYCLE_AFTER):
            self.stop()
        if self.proc is None:
            env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1")
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
            self.starts += 1
            log = open(self.log_dir / f"worker{self.index}-{self.starts}.log", "w")  # noqa: SIM115
            self.proc = subprocess.Popen(
                [sys.executable, str(WORKER), "--serve"],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
                start_new_session=True,  # its own process group: a timeout kills all of it
            )
            self.log = log
            self.jobs = 0
        return self.proc

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except Exception:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.log.close()
        self.proc = None

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = Path(self.log.name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])

    def run(self, job: Job, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Run one job; a stage over ``timeout`` seconds kills the worker."""
        result_path = Path(payload["result"])
        result_path.unlink(missing_ok=True)
        proc = self.ensure()
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(payload) + "\n")
        proc.stdin.flush()
        self.jobs += 1
        stage, stage_started = "start", time.monotonic()
        data: dict[str, Any] = {}
        while True:
            time.sleep(0.25)
            if result_path.is_file():
                try:
                    data = json.loads(result_path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    pass
            current = data.get("current", "start")
            if current == "done":
                return data
            if current != stage:
                stage, stage_started = current, time.monotonic()
            if proc.poll() is not None:
                code = proc.returncode
                self.stop()
                return _cut_short(data, stage, f"worker died (exit {code}): {self.log_tail()}")
            if time.monotonic() - stage_started > timeout:
                self.stop(kill=True)
                return _cut_short(data, stage, f"timeout: stage '{stage}' over {timeout:.0f} s")


def _cut_short(data: dict[str, Any], stage: str, why: str) -> dict[str, Any]:
    """The partial result of a killed worker: a twin stage keeps the diagnosis before it."""
    data = dict(data)
    if stage in TWINS:
        twins = data.setdefault("twins", {})
        twins[stage] = {"result": "timeout" if why.startswith("timeout") else "failed", "why": why}
        for twin in TWINS:
            twins.setdefault(twin, {"result": "not run", "why": f"after {stage}: {why}"})
    else:
        data["status"] = "timeout" if why.startswith("timeout") else "failed"
        data["reason"] = why
        if data["status"] == "failed":
            data["failure"] = {"where": stage, "exit": None, "error": why}
    data["current"] = "done"
    return data


class Sweep:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.out = Path(args.out)
        self.table = Path(args.table)
        self.lock = threading.Lock()
        self.doc = load_doc(self.out) if args.resume else {"sweep": {}, "models": {}}
        self.doc.setdefault("models", {})
        self.started = time.time()

    def settings(self) -> dict[str, Any]:
        a = self.args
        return {
            "steps": a.steps,
            "batch_size": a.batch_size,
            "seed": a.seed,
            "text_tokens": 32,
            "max_params": a.max_params,
            "timeout_per_stage_s": a.timeout,
            "jobs": a.jobs,
            "threads_per_worker": 1,
        }

    def record(self, job: Job, data: dict[str, Any], seconds: float) -> None:
        entry = {
            "zoo": job.zoo,
            "group": job.group,
            **job.extra,
            **{k: v for k, v in data.items() if k not in ("stages", "current", "stage_started")},
            "wall_seconds": round(seconds, 1),
        }
        entry.setdefault("status", "failed")
        with self.lock:
            self.doc["models"][job.key] = entry
            self.save()

    def save(self) -> None:
        sweep = self.doc.setdefault("sweep", {})
        if not sweep.get("versions"):  # the first run's; a later run records its own
            sweep.update(versions(), settings=self.settings())
        write_text(self.out, yaml.safe_dump(self.doc, sort_keys=False, width=100))
        write_text(self.table, render_table(self.doc))

    def run(self, jobs: list[Job]) -> None:
        work = list(jobs)
        total = len(work)
        done = [0]
        tmp = Path(tempfile.mkdtemp(prefix="gradcheck-sweep-"))
        print(f"sweep: {total} models, {self.args.jobs} workers, logs in {tmp}", file=sys.stderr)

        def slot(index: int) -> None:
            worker = Worker(tmp, index)
            try:
                while True:
                    with self.lock:
                        if not work:
                            return
                        job = work.pop(0)
                    payload = {
                        "key": job.key,
                        "zoo": job.zoo,
                        "name": job.name,
                        **job.extra,
                        "max_params": self.args.max_params,
                        "steps": self.args.steps,
                        "batch_size": self.args.batch_size,
                        "seed": self.args.seed,
                        "twins": not self.args.no_twins,
                        "reports": self.args.reports,
                        "result": str(tmp / f"result{index}.json"),
                    }
                    started = time.monotonic()
                    data = worker.run(job, payload, self.args.timeout)
                    seconds = time.monotonic() - started
                    self.record(job, data, seconds)
                    with self.lock:
                        done[0] += 1
                        print(
                            f"[{done[0]}/{total}] {job.key}: {one_line(self.doc['models'][job.key])}"
                            f" ({seconds:.0f} s)",
                            file=sys.stderr,
                            flush=True,
                        )
            finally:
                worker.stop()

        threads = [threading.Thread(target=slot, args=(i,)) for i in range(self.args.jobs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        run = {
            "started": dt.datetime.fromtimestamp(self.started).isoformat(timespec="seconds"),
            "minutes": round((time.time() - self.started) / 60, 1),
            "models": total,
            "argv": " ".join(sys.argv[1:]),
            "settings": self.settings(),
            **versions(),
        }
        with self.lock:
            self.doc["sweep"].setdefault("runs", []).append(run)
            self.save()


def load_doc(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {"sweep": {}, "models": {}}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {"sweep": {}, "models": {}}


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (gradcheck's own writer), creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda out: out.write(text))


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("torch", "torchvision", "timm", "transformers"):
        try:
            out[name] = str(__import__(name).__version__)
        except ImportError:
            out[name] = None
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"versions": out, "gradcheck_commit": commit}


# --- the table -----------------------------------------------------------------------------------


def serious(entry: dict[str, Any]) -> list[str]:
    return [f"{f['id']}:{f['severity']}" for f in entry.get("findings", [])]


def twin_cell(entry: dict[str, Any], twin: str) -> str:
    t = entry.get("twins", {}).get(twin)
    if entry.get("status") != "healthy" or t is None:
        return ""
    result = t.get("result")
    if result == "detected":
        return "detected by " + ", ".join(sorted(set(t.get("by", []))))
    if result == "missed":
        return "**MISSED**"
    return result or ""


def one_line(entry: dict[str, Any]) -> str:
    status = entry.get("status")
    if status in ("skipped", "timeout"):
        return f"{status}: {entry.get('reason', '')}"
    if status == "failed":
        return f"failed: {entry.get('failure', {}).get('error', '')}"
    parts = [status or "?"]
    if serious(entry):
        parts.append(" ".join(serious(entry)))
    twins = [f"{t}={twin_cell(entry, t)}" for t in TWINS if twin_cell(entry, t)]
    return "; ".join(parts + twins)


def _evidence(evidence: Any) -> str:
    if isinstance(evidence, dict):
        return ", ".join(f"{k}={_evidence(v)}" for k, v in evidence.items())
    if isinstance(evidence, list):
        shown = [_evidence(v) for v in evidence[:6]]
        return (
            "[" + ", ".join(shown) + (f", +{len(evidence) - 6}" if len(evidence) > 6 else "") + "]"
        )
    return str(evidence)


def _params(n: Any) -> str:
    if not isinstance(n, int):
        return ""
    return f"{n / 1e6:.1f}M" if n >= 1e5 else f"{n / 1e3:.0f}k"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _short_lists(text: str) -> str:
    """``[a, b, c, ...]`` of more than 60 characters -> ``[N items]`` (per-layer type lists)."""
    return re.sub(r"\[[^\[\]]{60,}\]", lambda m: f"[{m.group(0).count(',') + 1} items]", text)


def _short(text: str, most: int = 90) -> str:
    return text if len(text) <= most else text[: most - 3] + "..."


def render_table(doc: dict[str, Any]) -> str:
    models: dict[str, dict[str, Any]] = doc.get("models", {})
    sweep = doc.get("sweep", {})
    lines = ["# gradcheck zoo sweep", ""]
    lines.append(
        "Generated by `scripts/sweep.py` (raw results: `bench/sweep.yaml`). Every model at its "
        "default random initialisation, which for these widely used architectures is healthy: "
        "a warning or error on one is a false alarm. Each healthy model's pathological twins must "
        "be detected at warning or error: **sigmoid** (every activation module replaced by "
        "`nn.Sigmoid`), **small-init** (every weight of 2+ dimensions times 0.01), **no-norm** "
        "(every normalisation layer replaced by an identity)."
    )
    lines.append("")
    v = sweep.get("versions", {})
    s = sweep.get("settings", {})
    lines.append(
        f"gradcheck `{sweep.get('gradcheck_commit')}`; torch {v.get('torch')}, torchvision "
        f"{v.get('torchvision')}, timm {v.get('timm')}, transformers {v.get('transformers')}; "
        f"CPU, {s.get('steps')} steps x batch {s.get('batch_size')}, {s.get('text_tokens')} tokens, "
        f"seed {s.get('seed')}, budget {(s.get('max_params') or 0) / 1e6:.0f}M parameters, "
        f"{s.get('timeout_per_stage_s')} s per stage, {s.get('jobs')} workers x 1 thread."
    )
    runs = sweep.get("runs", [])
    if runs:
        lines.append(
            "Runs: "
            + "; ".join(
                f"{r['started']} ({r['minutes']} min, {r['models']} models"
                + (
                    f"; gradcheck `{r['gradcheck_commit']}`, torch {r['versions']['torch']}, "
                    f"transformers {r['versions']['transformers']}: `{_short(r['argv'])}`"
                    if r.get("versions")
                    else ""
                )
                + ")"
                for r in runs
            )
            + "."
        )
    lines += ["", "## Summary", ""]
    by_status: dict[str, int] = {}
    for e in models.values():
        by_status[e.get("status", "?")] = by_status.get(e.get("status", "?"), 0) + 1
    zoos: dict[str, int] = {}
    for e in models.values():
        zoos[e["zoo"]] = zoos.get(e["zoo"], 0) + 1
    lines.append(
        f"- Models: {len(models)} ("
        + ", ".join(f"{z} {n}" for z, n in sorted(zoos.items()))
        + "); "
        + ", ".join(f"{k} {n}" for k, n in sorted(by_status.items()))
        + "."
    )
    ran = [k for k, e in models.items() if e.get("status") in ("healthy", "warning", "error")]
    alarms = [k for k in ran if models[k]["status"] != "healthy"]
    lines.append(
        f"- **False alarms** (warning/error on a zoo model at its default init): "
        f"**{len(alarms)} of {len(ran)}** diagnosed"
        + (
            ": " + ", ".join(f"`{k}` ({' '.join(serious(models[k]))})" for k in alarms)
            if alarms
            else "."
        )
    )
    for twin in TWINS:
        counts: dict[str, int] = {}
        for k in ran:
            if models[k]["status"] != "healthy":
                continue
            r = models[k].get("twins", {}).get(twin, {}).get("result", "not run")
            counts[r] = counts.get(r, 0) + 1
        judged = counts.get("detected", 0) + counts.get("missed", 0)
        rate = f"{100 * counts.get('detected', 0) / judged:.0f}%" if judged else "-"
        rest = ", ".join(
            f"{r} {n}" for r, n in sorted(counts.items()) if r not in ("detected", "missed")
        )
        full = [
            models[k].get("twins", {}).get(twin, {}).get("result")
            for k in ran
            if models[k]["status"] == "healthy" and not models[k].get("reduced")
        ]
        full_judged = full.count("detected") + full.count("missed")
        full_rate = f"{100 * full.count('detected') / full_judged:.0f}%" if full_judged else "-"
        lines.append(
            f"- Twin **{twin}**: detected {counts.get('detected', 0)} of {judged} = **{rate}** "
            f"(target >= 95%); of the models at full size (not shrunk) "
            f"{full.count('detected')} of {full_judged} = {full_rate}"
            + (f"; also {rest}" if rest else "")
        )
    failed = [k for k, e in models.items() if e.get("status") == "failed"]
    timeouts = [k for k, e in models.items() if e.get("status") == "timeout"]
    skipped = [k for k, e in models.items() if e.get("status") == "skipped"]
    lines.append(
        f"- Failed in gradcheck or the zoo loader: {len(failed)}; timed out: {len(timeouts)}; "
        f"skipped: {len(skipped)} (lists below)."
    )
    reduced = [k for k, e in models.items() if e.get("reduced")]
    lines.append(
        f"- Shrunk to fit the parameter budget (how: column *reduced* below): {len(reduced)}."
    )

    if alarms:
        lines += ["", "## False alarms", ""]
        for k in alarms:
            e = models[k]
            lines.append(
                f"### `{k}` ({_params(e.get('params'))}{', reduced' if e.get('reduced') else ''})"
            )
            lines.append("")
            for f in e.get("findings", []):
                lines.append(f"- **{f['id']}:{f['severity']}** {_cell(f['message'])}")
                if f.get("layers"):
                    lines.append(f"  - layers: {', '.join(map(str, f['layers']))}")
                lines.append(f"  - evidence: {_cell(_evidence(f.get('evidence', {})))}")
            lines.append("")
    missed = [
        (k, t)
        for k in ran
        for t in TWINS
        if models[k]["status"] == "healthy"
        and models[k].get("twins", {}).get(t, {}).get("result") == "missed"
    ]
    if missed:
        lines += ["", "## Missed twins", ""]
        lines.append(
            "gw: median gradient-to-weight ratio of the weight layers; depth: first quarter's "
            "ratio over the last quarter's (roughly as the vanishing rule computes it); sat: the "
            "most saturated activation layer's fraction; in brackets the healthy original's."
        )
        lines.append("")
        lines.append(
            "| model | twin | changed | what gradcheck reported instead | gw / depth / sat | losses |"
        )
        lines.append("| --- | --- | --- | --- | --- | --- |")
        for k, t in missed:
            twin = models[k]["twins"][t]
            info = (
                "; ".join(f"{f['id']}:info {f['message']}" for f in twin.get("info", []))
                or "healthy, no finding"
            )
            st = twin.get("stats", {})
            base = models[k].get("stats", {})
            numbers = " / ".join(
                f"{st.get(n, '-')} ({base.get(n, '-')})"
                for n in ("gw_median", "depth_ratio", "max_saturated")
            )
            lines.append(
                f"| `{k}` | {t} | {twin.get('changed')} | {_cell(info)} | {numbers} | "
                f"{', '.join(map(str, twin.get('losses', [])))} |"
            )
    problems = [(k, models[k]) for k in failed + timeouts]
    twin_failures = [
        (k, t, models[k]["twins"][t])
        for k in ran
        for t in TWINS
        if models[k].get("twins", {}).get(t, {}).get("result") in ("failed", "timeout")
    ]
    if problems or twin_failures:
        lines += ["", "## Failed or timed out", ""]
        for k, e in problems:
            f = e.get("failure", {})
            where = f"{f.get('where')}, exit {f.get('exit')}" if f else e.get("status")
            text = f.get("error") or e.get("reason", "")
            lines.append(f"- `{k}` ({where}): {_cell(text)}")
        for k, t, twin in twin_failures:
            f = twin.get("failure", {})
            lines.append(
                f"- `{k}` {t} twin ({twin['result']}): {_cell(f.get('error') or twin.get('why', ''))}"
            )
    if skipped:
        lines += ["", "## Skipped", ""]
        for k in skipped:
            lines.append(f"- `{k}`: {_cell(models[k].get('reason', ''))}")

    lines += ["", "## All models", ""]
    lines.append(
        "| model | zoo | params | status | findings (warning/error) | info | sigmoid | small-init | "
        "no-norm | seconds | reduced |"
    )
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for k, e in models.items():
        status = e.get("status", "?")
        lines.append(
            "| "
            + " | ".join(
                _cell(x)
                for x in (
                    f"`{k.partition(':')[2]}`",
                    e["zoo"],
                    _params(e.get("params", e.get("params_default"))),
                    status,
                    " ".join(serious(e)),
                    len(e.get("info", [])) if status in ("healthy", "warning", "error") else "",
                    twin_cell(e, "sigmoid"),
                    twin_cell(e, "small-init"),
                    twin_cell(e, "no-norm"),
                    e.get("wall_seconds", ""),
                    _short_lists(e.get("reduced", "")),
                )
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


# --- command line --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--zoo", default="hf,torchvision,timm", help="comma-separated: hf, torchvision, timm"
    )
    p.add_argument(
        "--only", help="regular expression searched in the model key (e.g. 'hf:Bert|resnet')"
    )
    p.add_argument("--limit", type=int, help="run at most N models (after --only and --resume)")
    p.add_argument(
        "--timeout", type=float, default=120, help="seconds per stage of a model (default 120)"
    )
    p.add_argument(
        "--max-params",
        type=float,
        default=150e6,
        help="parameter budget; larger models are shrunk or skipped (default 150e6)",
    )
    p.add_argument("--out", default=str(ROOT / "bench" / "sweep.yaml"), help="raw results (YAML)")
    p.add_argument(
        "--table", default=str(ROOT / "bench" / "sweep.md"), help="results table (Markdown)"
    )
    p.add_argument("--resume", action="store_true", help="skip models already in --out")
    p.add_argument(
        "--jobs", type=int, default=2, help="worker processes, 1 thread each (default 2)"
    )
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-twins", action="store_true", help="diagnose the models only")
    p.add_argument("--reports", help="also write every full gradcheck report (YAML) to this folder")
    p.add_argument("--list", action="store_true", help="print the models that would run, and stop")
    p.add_argument(
        "--table-only", action="store_true", help="re-render --table from --out, and stop"
    )
    p.add_argument(
        "--cache",
        default=str(
            Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gradcheck-sweep"
        ),
        help="where timm parameter counts are cached",
    )
    args = p.parse_args(argv)
    args.max_params = int(args.max_params)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table_only:
        write_text(Path(args.table), render_table(load_doc(Path(args.out))))
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    zoos = [z.strip() for z in args.zoo.split(",") if z.strip()]
    unknown = set(zoos) - {"hf", "torchvision", "timm"}
    if unknown:
        print(f"sweep: unknown zoo(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    jobs = enumerate_jobs(zoos, Path(args.cache))
    if args.only:
        pattern = re.compile(args.only, re.IGNORECASE)
        jobs = [j for j in jobs if pattern.search(j.key)]
    sweep = Sweep(args)
    if args.resume:
        jobs = [j for j in jobs if j.key not in sweep.doc["models"]]
    if args.limit is not None:
        jobs = jobs[: args.limit]
    if args.list:
        for j in jobs:
            print(f"{j.key}\t{j.group}")
        return 0
    sweep.run(jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
