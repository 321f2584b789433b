"""Issue 15: the pathological twins through ``fix`` (companion to ``twin_truth.py``).

For each model of ``twin_truth.SAMPLE`` and each twin kind: build the twin exactly as the sweep
does, diagnose it as the sweep does, and when it is flagged (a warning or error) run
``gradcheck_cli.fix`` on it (the sweep's settings: 3 steps, batch 2, seed 0, CPU; remedy budget
4). The chosen model is saved (``torch.save`` of the whole module) and diagnosed in a fresh process
that rebuilds the zoo's batches and loss for the model and loads the saved one, on fresh batches
(seed 1); cured means no finding at warning or error left. One process per model, 2 at a time.

    /work/zoo-venv/bin/python scripts/twin_fix.py [--only REGEX] [--jobs 2] [--timeout 400]

Writes ``bench/twin_fix.yaml`` and ``bench/twin_fix.md`` (with ``--zoo``: every healthy model of
``bench/sweep.yaml``, to ``bench/twin_fix_zoo.{yaml,md}``; ``--resume`` keeps every model that table
or ``bench/.twin_fix_zoo`` already holds, so a run continues across sessions).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import copy
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = ROOT / "bench" / "twin_fix.yaml"
sys.path.insert(0, str(HERE))


def one(key: str, out_path: Path) -> None:
    import sweep_worker as sw

    from gradcheck_cli.api import diagnose, fix

    model0, inputs, loss_fn = _build(key)
    base = copy.deepcopy(model0.state_dict())
    result: dict[str, Any] = {"key": key, "twins": {}}

    def save() -> None:
        tmp = out_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, default=str), encoding="utf-8")
        os.replace(tmp, out_path)

    for twin in sw.TWINS:
        entry_t: dict[str, Any] = {}
        result["twins"][twin] = entry_t
        try:
            model = copy.deepcopy(model0)
            model.load_state_dict(base)
            if sw.TRANSFORMS[twin](model) == 0:
                entry_t["verdict"] = "n/a"
                continue
            settings = {"steps": 3, "seed": 0, "batch_size": 2, "device": "cpu"}
            before = diagnose(model, inputs, loss_fn, **settings)
            entry_t["before"] = _serious(before)
            if not entry_t["before"]:
                entry_t["verdict"] = "not flagged"
                continue
            started = time.perf_counter()
            done = fix(model, inputs, loss_fn, budget=4, **settings)
            entry_t["seconds"] = round(time.perf_counter() - started, 1)
            entry_t["edits"] = len(done.plan.edits)
            entry_t["remedies"] = sorted({e.remedy for e in done.plan.edits})
            entry_t["outcomes"] = {o.remedy: o.verdict.value for o in done.outcomes}
            if done.chosen is None:
                entry_t["verdict"] = "not cured"
                entry_t["reason"] = done.message
                continue
            entry_t["after"] = _verify_elsewhere(key, twin, done.model, out_path)
            entry_t["verdict"] = "cured" if not entry_t["after"] else "not cured"
            if entry_t["after"]:
                entry_t["reason"] = "left after the chosen plan: " + ", ".join(entry_t["after"])
        except Exception as exc:  # recorded, not fatal
            entry_t["verdict"] = "error"
            entry_t["reason"] = f"{type(exc).__name__}: {sw._first_line(exc)}"
            _twin_did_not_run(entry_t)
        save()
    result["done"] = True
    save()


def _verify_elsewhere(key: str, twin: str, model: Any, out_path: Path) -> list[str]:
    """Save the fixed model and diagnose it in a fresh process, on fresh batches (seed 1)."""
    import torch

    saved = out_path.with_name(out_path.stem + f"-{twin}.pt")
    found = out_path.with_name(out_path.stem + f"-{twin}.verify.json")
    torch.save(model, saved)
    try:
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--verify",
                key,
                "--model",
                str(saved),
                "--json",
                str(found),
            ],
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            check=True,
            capture_output=True,
            timeout=300,
        )
        return list(json.loads(found.read_text(encoding="utf-8")))
    finally:
        saved.unlink(missing_ok=True)
        found.unlink(missing_ok=True)


def verify(key: str, model_path: Path, out_path: Path) -> None:
    """The fresh process: the zoo's batches and loss for ``key``, the saved model, a diagnosis."""
    import torch

    from gradcheck_cli.api import diagnose

    _, inputs, loss_fn = _build(key)
    model = torch.load(model_path, weights_only=False)  # written by this script a moment ago
    report = diagnose(model, inputs, loss_fn, steps=3, seed=1, batch_size=2, device="cpu")
    out_path.write_text(json.dumps(_serious(report)), encoding="utf-8")


def _build(key: str) -> Any:
    """``(model, inputs, loss_fn)`` for ``key``, built as the sweep builds it (no downloads)."""
    import warnings

    import sweep_worker as sw
    import twin_truth as tt

    warnings.filterwarnings("ignore")
    sw._no_downloads()
    zoo_name, _, name = key.partition(":")
    entry = _sweep_entries().get(key) or (
        {"class": name} if zoo_name == "hf" else {"kind": "classification"}
    )
    job = tt._job(key, entry, tt.MAX_PARAMS)
    zoo = sw.ZOOS[job["zoo"]](job)
    zoo.plan_build(job["max_params"])
    return zoo.build()


def _twin_did_not_run(entry: dict[str, Any]) -> None:
    """An error before the twin's first diagnosis is the twin's own: removing a norm whose
    weight the model reads (Mamba mixers read ``norm.weight``) leaves no model to fix."""
    if entry.get("verdict") == "error" and "before" not in entry:
        entry["verdict"] = "n/a"
        entry["reason"] = "the twin itself does not run: " + entry.get("reason", "")


def _sweep_entries() -> dict[str, Any]:
    """``bench/sweep.yaml``'s models: how the sweep built each (class, kind, task) and its status."""
    import yaml

    path = ROOT / "bench" / "sweep.yaml"
    if not path.exists():
        return {}
    return dict(yaml.safe_load(path.read_text(encoding="utf-8")).get("models") or {})


def _serious(report: Any) -> list[str]:
    """The findings at warning or error, as ``id:severity``."""
    return [f"{f.id}:{f.severity.value}" for f in report.findings if f.severity.rank >= 1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--json", help=argparse.SUPPRESS)
    p.add_argument("--verify", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--only", help="run only the models matching this regular expression")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--timeout", type=int, default=400)
    p.add_argument(
        "--zoo",
        action="store_true",
        help="every model bench/sweep.yaml found healthy (in a seeded random order, so a run cut"
        " short is a random sample), written to bench/twin_fix_zoo.{yaml,md}",
    )
    p.add_argument(
        "--resume", action="store_true", help="keep the models already done in bench/.twin_fix"
    )
    p.add_argument(
        "--report", action="store_true", help="only rewrite the table from bench/.twin_fix"
    )
    args = p.parse_args()
    if args.one:
        one(args.one, Path(args.json))
        return 0
    if args.verify:
        verify(args.verify, Path(args.model), Path(args.json))
        return 0
    import twin_truth as tt
    import yaml

    if args.zoo:
        import random

        entries = _sweep_entries()
        keys = sorted(k for k, e in entries.items() if e.get("status") == "healthy")
        random.Random(0).shuffle(keys)
        out_yaml, out_md = ROOT / "bench" / "twin_fix_zoo.yaml", ROOT / "bench" / "twin_fix_zoo.md"
    else:
        keys = list(tt.SAMPLE)
        out_yaml, out_md = OUT, ROOT / "bench" / "twin_fix.md"
    keys = [k for k in keys if not args.only or re.search(args.only, k)]
    tmp = ROOT / "bench" / (".twin_fix_zoo" if args.zoo else ".twin_fix")
    tmp.mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = time.time()
    # What a committed table already holds counts as done: a run spans sessions and clones.
    kept = (
        yaml.safe_load(out_yaml.read_text(encoding="utf-8")).get("models", {})
        if (args.resume or args.report) and out_yaml.exists()
        else {}
    )

    def run(key: str) -> dict[str, Any]:
        path = tmp / (re.sub(r"\W", "_", key) + ".json")
        if key in kept and not path.exists():
            path.write_text(json.dumps(kept[key]), encoding="utf-8")
        if args.report or (args.resume and path.exists()):
            data = json.loads(path.read_text()) if path.exists() else None
            if data is not None or args.report:
                return data or {"key": key, "twins": {}, "not_run": True}
        path.unlink(missing_ok=True)
        try:
            subprocess.run(
                [sys.executable, __file__, "--one", key, "--json", str(path)],
                env=env,
                timeout=args.timeout,
                capture_output=True,
                check=False,
            )
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        data = json.loads(path.read_text()) if path.exists() else {"key": key, "twins": {}}
        if timed_out:
            data["timeout"] = args.timeout
            path.write_text(json.dumps(data), encoding="utf-8")
        print(key, {t: e.get("verdict") for t, e in data["twins"].items()}, flush=True)
        return data

    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        ran = list(pool.map(run, keys))
    results = [r for r in ran if not r.get("not_run")]
    doc = {
        "minutes": round((time.time() - started) / 60, 1),
        "models": {r["key"]: r for r in results},
    }
    out_yaml.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    scope = (
        f"{len(results)} of the {len(keys)} models `bench/sweep.yaml` found healthy (a seeded"
        " random order; the rest not run)"
        if args.zoo
        else f"the {len(results)} models of `twin_truth.SAMPLE`"
    )
    lines = [
        "# The sweep's twins through `fix`",
        "",
        f"Generated by `scripts/twin_fix.py{' --zoo' if args.zoo else ''}` (raw: "
        f"`bench/{out_yaml.name}`) on {scope}.",
        "",
        "| twin | flagged | cured | not cured | fix failed |",
        "|---|---|---|---|---|",
    ]
    import sweep_worker as sw

    for twin in sw.TWINS:
        rows = [r["twins"].get(twin, {}) for r in results]
        flagged = [e for e in rows if e.get("verdict") in ("cured", "not cured", "error")]
        cured = [e for e in flagged if e["verdict"] == "cured"]
        failed = [e for e in flagged if e["verdict"] == "error"]
        lines.append(
            f"| {twin} | {len(flagged)} | {len(cured)} | {len(flagged) - len(cured) - len(failed)}"
            f" | {len(failed)} |"
        )
    lines += ["", "## Every flagged twin", ""]
    for r in results:
        for twin, e in r["twins"].items():
            if e.get("verdict") in ("cured", "not cured", "error"):
                lines.append(
                    f"- `{r['key']}` **{twin}**: {e['verdict']}; before {', '.join(e.get('before', []))};"
                    f" plan {', '.join(e.get('remedies', [])) or '-'}"
                    + (f"; {e['reason']}" if e.get("reason") else "")
                )
        if r.get("timeout"):
            lines.append(f"- `{r['key']}`: cut at {r['timeout']} s")
    out_md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
