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


def test_expert_groups_and_moe_k_follow_the_experts_left() -> None:
    # AX-K1 / DeepSeek V3: 192 experts in 8 groups, top-4 groups searched. Shrunk to 4 experts,
    # 8 groups held 4 // 8 = 0 each: "shape '[-1, 8, 0]' is invalid". Ernie 4.5's moe_k of 6 is
    # more than the 4 experts left: "selected index k out of range".
    worker = _worker()
    out = worker._width_overrides(
        {"hidden_size": 7168, "num_attention_heads": 64, "n_routed_experts": 192,
         "num_experts_per_tok": 8, "n_group": 8, "topk_group": 4},
        256,
    )  # fmt: skip
    assert (out["n_routed_experts"], out["num_experts_per_tok"]) == (4, 2)
    assert (out["n_group"], out["topk_group"]) == (1, 1)
    bailing = worker._width_overrides(
        {"hidden_size": 4096, "num_attention_heads": 32, "num_experts": 512,
         "num_expert_group": 8, "topk_group": 4},
        256,
    )  # fmt: skip
    assert (bailing["num_experts"], bailing["num_expert_group"], bailing["topk_group"]) == (4, 1, 1)
    ernie = worker._width_overrides(
        {"hidden_size": 2560, "num_attention_heads": 20, "moe_num_experts": 64, "moe_k": 6}, 512
    )
    assert (ernie["moe_num_experts"], ernie["moe_k"]) == (4, 2)
    # Without experts shrunk, groups are left as they are.
    dense = worker._width_overrides(
        {"hidden_size": 1024, "num_attention_heads": 16, "n_group": 8}, 256
    )
    assert "n_group" not in dense


def test_an_explicit_head_size_is_kept_and_the_width_stays_a_multiple_of_16() -> None:
    # GPT-OSS: 64 heads of 64 over a width of 2,880. Heads of 2,880 / 64 = 45 made a width of
    # 270: its grouped expert kernels need rows of a multiple of 16 bytes ("strides should be
    # multiple of 16 bytes").
    out = _worker()._width_overrides(
        {"hidden_size": 2880, "num_attention_heads": 64, "num_key_value_heads": 8,
         "head_dim": 64},
        256,
    )  # fmt: skip
    assert out["hidden_size"] == 256 and out["hidden_size"] % 16 == 0
    assert (out["num_attention_heads"], out["num_key_value_heads"]) == (6, 1)
    assert "head_dim" not in out
    # A head size that is the width over the heads is shrunk as before: fewer heads of it.
    plain = _worker()._width_overrides(
        {"hidden_size": 4096, "num_attention_heads": 32, "head_dim": 128}, 512
    )
    assert (plain["hidden_size"], plain["num_attention_heads"]) == (512, 4)
