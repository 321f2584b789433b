"""What the model-level temporal profile costs: the same diagnosis with it and without it, in one
run, interleaved (the ratio is what counts on a shared machine).

    python bench/temporal_cost.py    # prints the Markdown table committed as bench/temporal_cost.md

"Without" replaces the profiler's attach with one that profiles nothing; "with" is the default.
Each diagnosis runs ``REPEATS`` times alternately; the medians are compared.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import torch

from gradcheck_cli import diagnose
from gradcheck_cli.loading import load_model
from gradcheck_cli.temporal import PositionProfiler

ROOT = Path(__file__).resolve().parent.parent
SPECS = (
    "gru_first_token.py",  # an nn.GRU: both profiles, no cut
    "tcn_short_rf.py",  # a cliff: the profile plus the values probe (3 forward passes)
    "diagonal_recurrence.py",  # a Python loop over 40 steps
    "transformer_preln.py",  # attention: profiled, not judged
)
REPEATS = 5


@contextlib.contextmanager
def _nothing(cls: type, model: torch.nn.Module, time_axis: int | None = None) -> Iterator[None]:
    yield None


def seconds(spec: str, profiled: bool) -> float:
    loaded = load_model(str(ROOT / "sample_models" / spec))
    patch = (
        contextlib.nullcontext()
        if profiled
        else mock.patch.object(PositionProfiler, "attach", classmethod(_nothing))
    )
    with patch:
        start = time.perf_counter()
        diagnose(loaded.module, loaded.example_inputs, loaded.loss_fn)
        return time.perf_counter() - start


def main() -> None:
    torch.set_num_threads(1)
    print("| sample | without (s) | with (s) | with / without |")
    print("|---|---|---|---|")
    for spec in SPECS:
        runs: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(REPEATS):
            for profiled in (False, True):
                runs[profiled].append(seconds(spec, profiled))
        off, on = statistics.median(runs[False]), statistics.median(runs[True])
        print(f"| {spec} | {off:.2f} | {on:.2f} | {on / off:.2f} |", flush=True)


if __name__ == "__main__":
    main()
