"""The zoo sweep's shrink (scripts/sweep_worker.py): a model over the parameter budget is rebuilt
smaller; the smaller model must keep what decides its verdict, or the sweep reports artefacts of
the shrink as the model's."""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType

import torch

from .conftest import ROOT


def _worker() -> ModuleType:
    path = ROOT / "scripts" / "sweep_worker.py"
    spec = importlib.util.spec_from_file_location("sweep_worker", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # The worker sets one thread and offline flags for its own process: not for this one.
    threads, environ = torch.get_num_threads(), dict(os.environ)
    try:
        spec.loader.exec_module(module)
    finally:
        torch.set_num_threads(threads)
        os.environ.clear()
        os.environ.update(environ)
    return module


def test_a_hybrid_placing_attention_by_offset_keeps_an_attention_layer() -> None:
    # Jamba: attention at layer 4 of every 8. Two layers from the start would be pure Mamba (its
    # state forgets in 10 positions at HF's init; the full model's attention reaches back).
    out = _worker()._depth_overrides(
        {"num_hidden_layers": 32, "attn_layer_offset": 4, "attn_layer_period": 8}, 2
    )
    assert out == {"num_hidden_layers": 2, "attn_layer_offset": 1, "attn_layer_period": 2}


def test_zero_computation_experts_shrink_with_the_routed_ones() -> None:
    # LongCat-Flash: 512 routed experts and 256 that compute nothing. 4 real beside 256 zero ones
    # and top-2 routing left the real experts without a token (no gradient) in the sweep.
    out = _worker()._width_overrides(
        {
            "hidden_size": 6144,
            "num_attention_heads": 64,
            "n_routed_experts": 512,
            "zero_expert_num": 256,
            "moe_topk": 12,
        },
        256,
    )
    assert (out["n_routed_experts"], out["zero_expert_num"], out["moe_topk"]) == (4, 2, 2)
