"""Recall and precision of gradcheck's default verdict against training truth.

    python bench/truth/score.py            # prints the Markdown table committed as bench/truth/README.md
    python bench/truth/score.py --learn 300   # the same with the learning probe (any diagnose flags)

Every labelled model (``samples.yaml``: the repository's samples; ``heldout*/labels.yaml``:
models written and labelled by testers who had not seen the rules, each with its plain-PyTorch
``oracle.py``) is diagnosed by ``gradcheck diagnose SPEC --format yaml`` at the defaults, in a
process of its own. A model is *flagged* when a finding reaches warning or error, and *fails CI*
when one reaches error (the default ``--fail-on``). Recall: flagged models among those that do
not train; precision: models that do not train among those flagged (a warning or an error on a
model that trains counts against it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
GRADCHECK = [sys.executable, "-m", "gradcheck_cli"]


def label_here(entry: dict[str, object]) -> str:
    """The label on the running torch (``before_torch`` names an older torch's, as in the tests)."""
    import torch

    here = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
    given = entry.get("before_torch") or {}
    assert isinstance(given, dict)
    older = {tuple(int(part) for part in str(v).split(".")): label for v, label in given.items()}
    for version in sorted(older):  # the oldest threshold this torch is below names its label
        if here < version:
            return str(older[version])
    return str(entry["label"])


def labelled() -> list[dict[str, str]]:
    """Every labelled model: set, name, spec (path from the repository root), label, kind."""
    found = []
    for name, entry in yaml.safe_load((HERE / "samples.yaml").read_text())["models"].items():
        found.append({"set": "samples", "name": name, **entry})
    for folder in sorted(path.parent for path in HERE.glob("heldout*/labels.yaml")):  # labelled
        labels = yaml.safe_load((folder / "labels.yaml").read_text())["models"]
        kinds = yaml.safe_load((folder / "kinds.yaml").read_text())
        for name, entry in labels.items():
            spec = str((folder / entry["file"]).relative_to(ROOT))
            found.append(
                {"set": folder.name, "name": name, "spec": spec, "label": label_here(entry),
                 "kind": kinds[name]}
            )  # fmt: skip
    return found


def diagnose(spec: str, flags: Sequence[str] = ()) -> tuple[int, list[tuple[str, str]]]:
    """Exit code and the (id, severity) of each warning or error, with extra ``flags``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [*GRADCHECK, "diagnose", spec, "--format", "yaml", *flags],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=600,
    )  # fmt: skip
    if done.returncode not in (0, 1):
        return done.returncode, [("did-not-run", done.stderr.strip().splitlines()[-1][:120])]
    report = yaml.safe_load(done.stdout)
    return done.returncode, [
        (f["id"], f["severity"])
        for f in report["findings"]
        if f["severity"] in ("warning", "error")
    ]


def main() -> None:
    flags = sys.argv[1:]
    rows = []
    for model in labelled():
        code, serious = diagnose(model["spec"], flags)
        rows.append((model, code, serious))
    print("| set | model | kind | training | exit | warnings and errors |")
    print("|---|---|---|---|---|---|")
    for model, code, serious in rows:
        shown = ", ".join(f"{i} {s}" for i, s in serious) or "-"
        print(
            f"| {model['set']} | {model['name']} | {model['kind']} | {model['label']} | {code} | {shown} |"
        )
    print()
    print(
        "| part | kind | models | do not train | flagged of those (recall) | fail CI of those | flagged that train | precision |"
    )
    print("|---|---|---|---|---|---|---|---|")
    parts = sorted({m["set"] for m, _, _ in rows})
    for part in [*parts, "every set"]:
        kinds = sorted({m["kind"] for m, _, _ in rows if m["set"] == part})
        for kind in [*kinds, "all"]:
            chosen = [
                r
                for r in rows
                if part in ("every set", r[0]["set"]) and kind in ("all", r[0]["kind"])
            ]
            broken = [r for r in chosen if r[0]["label"] == "does-not-train"]
            flagged = [r for r in chosen if r[2]]
            hit = [r for r in broken if r[2]]
            ci = [r for r in broken if r[1] == 1 and any(s == "error" for _, s in r[2])]
            false = [r for r in flagged if r[0]["label"] == "trains"]
            recall = f"{len(hit)}/{len(broken)}" if broken else "-"
            precision = f"{len(flagged) - len(false)}/{len(flagged)}" if flagged else "-"
            print(
                f"| {part} | {kind} | {len(chosen)} | {len(broken)} | {recall} | "
                f"{len(ci)}/{len(broken) if broken else 0} | {len(false)} | {precision} |"
            )


if __name__ == "__main__":
    main()
