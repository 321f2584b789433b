"""Facts read off the autograd graph: depth, paths, input layers and residual scales."""

from __future__ import annotations

import torch
from torch import nn

from gradcheck_cli.aggregate import GraphFacts
from gradcheck_cli.capture import capture


def _structure(model: nn.Module, *inputs: torch.Tensor) -> tuple[list[str], GraphFacts]:
    with capture(model) as recorder:
        loss = model(*inputs).float().square().mean()
        names = [info.name for info in recorder.infos]
        return names, recorder.structure(loss)


def _by_name(names: list[str], values: tuple) -> dict[str, object]:  # type: ignore[type-arg]
    return dict(zip(names, values, strict=True))


class TwoBranches(nn.Module):
    """A CNN branch and a two-layer MLP branch fused by ``fuse``, then two heads."""

    def __init__(self) -> None:
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.AdaptiveAvgPool2d(1)
        )
        self.mlp = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 8))
        self.fuse = nn.Linear(12, 8)
        self.a = nn.Linear(8, 2)
        self.b = nn.Linear(8, 1)

    def forward(self, image: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        h = self.fuse(torch.cat([self.cnn(image).flatten(1), self.mlp(table)], dim=1))
        return torch.cat([self.b(h), self.a(h)], dim=1)  # b called first


def test_depth_is_distance_from_the_loss_not_call_order() -> None:
    names, s = _structure(TwoBranches(), torch.randn(2, 3, 8, 8), torch.randn(2, 5))
    depth = _by_name(names, s.depth)
    assert depth == {
        "cnn.0": 4, "cnn.1": 0, "cnn.2": 3,
        "mlp.0": 4, "mlp.1": 0, "mlp.2": 3,
        "fuse": 2, "a": 1, "b": 1,
    }  # fmt: skip
    successor = _by_name(names, s.successor)
    assert names[successor["cnn.0"]] == "cnn.2" and names[successor["mlp.2"]] == "fuse"  # type: ignore[index]
    assert successor["a"] == -1 and successor["b"] == -1
    inputs = {n for n, flag in zip(names, s.is_input, strict=True) if flag}
    assert inputs == {"cnn.0", "mlp.0"}


class Scaled(nn.Module):
    """``x + gamma * f(x)`` with ``gamma`` owned by the block (timm's ConvNeXt/ViT style)."""

    def __init__(self, dim: int, init: float) -> None:
        super().__init__()
        self.f = nn.Linear(dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.f(x) * self.gamma


class Gated(nn.Module):
    """A weight-matrix parameter multiplied in: not a scale, whatever its size."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(dim, dim) * 1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + x @ self.w


def test_residual_scales_are_found_by_what_they_multiply() -> None:
    model = nn.Sequential(nn.Linear(6, 6), Scaled(6, 1e-6), Scaled(6, 0.5), Gated(6))
    names, s = _structure(model, torch.randn(3, 6))
    assert _by_name(names, s.residual_scale) == {"0": False, "1": True, "1.f": False, "2": True, "2.f": False, "3": False}  # fmt: skip


def test_a_parameter_added_to_the_input_enters_with_the_first_layer() -> None:
    class Positional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pos = nn.Parameter(torch.zeros(1, 4, 8))
            self.proj = nn.Linear(8, 8)
            self.head = nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.relu(self.proj(x + self.pos)))

    names, s = _structure(Positional(), torch.randn(2, 4, 8))
    assert _by_name(names, s.depth) == {"": 2, "proj": 2, "head": 1}
    assert _by_name(names, s.is_input) == {"": True, "proj": True, "head": False}


def test_a_shared_module_gets_the_deepest_of_its_calls() -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = nn.Linear(4, 4)
            self.head = nn.Linear(4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.block(torch.tanh(self.block(x))))

    names, s = _structure(Shared(), torch.randn(2, 4))
    assert _by_name(names, s.depth) == {"block": 2, "head": 1}


def test_no_graph_gives_unknown_structure() -> None:
    model = nn.Linear(3, 1)
    with capture(model) as recorder:
        assert recorder.structure(torch.tensor(1.0)) == GraphFacts.unknown(1)


class Attention(nn.Module):
    """Separate query/key/value projections; ``fused`` uses one projection for all three."""

    def __init__(self, dim: int, fused: bool = False) -> None:
        super().__init__()
        self.fused = fused
        if fused:
            self.qkv = nn.Linear(dim, 3 * dim)
        else:
            self.wq, self.wk, self.wv = (nn.Linear(dim, dim) for _ in range(3))
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            q, k, v = self.qkv(x).chunk(3, dim=-1)
        else:
            q, k, v = self.wq(x), self.wk(x), self.wv(x)
        probs = torch.softmax(q @ k.transpose(1, 2) / 8**0.5, dim=-1)
        return self.out(torch.dropout(probs, 0.1, True) @ v)


def test_query_and_key_projections_are_found_by_where_they_flow() -> None:
    names, s = _structure(Attention(8), torch.randn(2, 5, 8))
    assert _by_name(names, s.attention_score) == {"wq": True, "wk": True, "wv": False, "out": False}
    names, s = _structure(Attention(8, fused=True), torch.randn(2, 5, 8))
    assert _by_name(names, s.attention_score) == {"qkv": False, "out": False}


def test_fused_attention_query_and_key_slots() -> None:
    class Sdpa(Attention):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            q, k, v = self.wq(x), self.wk(x), self.wv(x)
            return self.out(torch.nn.functional.scaled_dot_product_attention(q, k, v))

    names, s = _structure(Sdpa(8), torch.randn(2, 5, 8))
    assert _by_name(names, s.attention_score) == {"wq": True, "wk": True, "wv": False, "out": False}


def test_a_router_feeds_gates_not_values() -> None:
    class TopTwo(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.router = nn.Linear(6, 4)
            self.experts = nn.ModuleList(nn.Linear(6, 6) for _ in range(4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            weights, chosen = torch.softmax(self.router(x), dim=-1).topk(2, dim=-1)
            out = torch.zeros_like(x)
            for slot in range(2):
                for e, expert in enumerate(self.experts):
                    rows = chosen[:, slot] == e
                    if rows.any():
                        out[rows] += weights[rows, slot, None] * expert(x[rows])
            return out

    torch.manual_seed(0)
    names, s = _structure(TopTwo(), torch.randn(16, 6))
    scores = {n for n, flag in zip(names, s.attention_score, strict=True) if flag}
    assert scores == {"router"}


def test_a_layer_feeds_a_norm_through_reshapes() -> None:
    class LinearBN(nn.Module):  # Levit's LevitMLPLayerWithBN: BatchNorm1d over flattened tokens
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(6, 6)
            self.bn = nn.BatchNorm1d(6)
            self.after = nn.Linear(6, 6)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.linear(x)
            h = self.bn(h.flatten(0, 1)).reshape_as(h)
            return self.after(h + x)  # a residual sum into `after`: not scale-invariant

    names, s = _structure(LinearBN(), torch.randn(3, 4, 6))
    assert _by_name(names, s.feeds_norm) == {"linear": True, "bn": False, "after": False}


def test_a_gate_between_two_attention_maps_is_a_scale_and_relu_passes_scale_invariance() -> None:
    class Mix(nn.Module):  # ConViT's gated positional self-attention, reduced
        def __init__(self) -> None:
            super().__init__()
            self.gate = nn.Parameter(torch.ones(2))
            self.proj = nn.Linear(5, 5)

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            g = torch.sigmoid(self.gate).view(1, -1, 1)
            return self.proj((1.0 - g) * a + g * b)

    maps = (torch.randn(3, 2, 5, requires_grad=True), torch.randn(3, 2, 5, requires_grad=True))
    names, s = _structure(Mix(), *maps)  # the two maps come from earlier layers in ConViT
    assert _by_name(names, s.residual_scale) == {"": True, "proj": False}

    class ConvActNorm(nn.Module):  # ConvMixer: conv, GELU, BatchNorm
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)
            self.norm = nn.BatchNorm2d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.norm(torch.nn.functional.gelu(self.conv(x)))

    names, s = _structure(ConvActNorm(), torch.randn(2, 3, 4, 4))
    assert _by_name(names, s.feeds_norm) == {"conv": True, "norm": False}


def test_a_scaled_branch_concatenated_is_a_residual_scale_and_separable_convs_feed_the_norm() -> (
    None
):
    class Dense(nn.Module):  # RDNet: LayerScale on a branch concatenated to its input
        def __init__(self) -> None:
            super().__init__()
            self.f = nn.Conv2d(4, 2, 1)
            self.gamma = nn.Parameter(torch.full((2, 1, 1), 1e-6))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([x, self.f(x) * self.gamma], dim=1)

    class Separable(nn.Module):  # NASNet: depthwise, pointwise, BatchNorm
        def __init__(self) -> None:
            super().__init__()
            self.depthwise = nn.Conv2d(6, 6, 3, padding=1, groups=6)
            self.pointwise = nn.Conv2d(6, 6, 1)
            self.bn = nn.BatchNorm2d(6)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.bn(self.pointwise(self.depthwise(torch.relu(x))))

    model = nn.Sequential(nn.Conv2d(3, 4, 1), Dense(), Separable())
    names, s = _structure(model, torch.randn(2, 3, 5, 5))
    assert _by_name(names, s.residual_scale)["1"] is True
    feeding = _by_name(names, s.feeds_norm)
    assert feeding["2.depthwise"] and feeding["2.pointwise"] and not feeding["1.f"]


def test_a_zero_gain_inside_a_weight_layer_is_a_zero_initialisation() -> None:
    from gradcheck_cli.layer_facts import _zero_gain

    class ScaledStd(nn.Conv2d):  # timm's ScaledStdConv2d: weight x gain, gain zero at init
        def __init__(self) -> None:
            super().__init__(4, 4, 1)
            self.gain = nn.Parameter(torch.zeros(4, 1, 1, 1))

    def norm(p: torch.Tensor) -> float:
        return float(torch.linalg.vector_norm(p))

    assert _zero_gain(ScaledStd(), norm)
    assert not _zero_gain(nn.Conv2d(4, 4, 1), norm)
    # in_proj_bias starts at zero: a bias
    assert not _zero_gain(nn.MultiheadAttention(8, 2), norm)
    root = nn.Module()
    root.cls_token = nn.Parameter(torch.zeros(1, 1, 8))  # a zero token is not a gain
    root.pos_embed = nn.Parameter(torch.randn(1, 5, 8))
    assert not _zero_gain(root, norm)


class Concatenated(nn.Module):
    """NASNet's factorised reduction (two 1x1 convs side by side along channels into one
    BatchNorm), or the same two projections concatenated along features into a LayerNorm."""

    def __init__(self, norm: str) -> None:
        super().__init__()
        self.p1 = nn.Conv2d(4, 3, 1)
        self.p2 = nn.Conv2d(4, 3, 1)
        self.norm = nn.BatchNorm2d(6) if norm == "batch" else nn.LayerNorm(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(
            torch.cat([self.p1(x), self.p2(x)], 1 if isinstance(self.norm, nn.BatchNorm2d) else -1)
        )


def test_channels_concatenated_into_a_batchnorm_feed_it_but_features_into_a_layernorm_do_not() -> (
    None
):
    names, s = _structure(Concatenated("batch"), torch.randn(2, 4, 5, 5))
    assert _by_name(names, s.feeds_norm) == {"p1": True, "p2": True, "norm": False}
    # LayerNorm's statistics span both halves: scaling one projection changes the output.
    names, s = _structure(Concatenated("layer"), torch.randn(2, 4, 4, 4))
    assert _by_name(names, s.feeds_norm) == {"p1": False, "p2": False, "norm": False}


def test_a_layer_whose_output_the_loss_reads_only_in_part() -> None:
    class Cls(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Linear(4, 4)
            self.side = nn.Linear(4, 4)
            self.head = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.body(x)[:, 0]) + self.side(x).mean(1)[:, :2]

    names, s = _structure(Cls(), torch.randn(2, 5, 4))
    # `side` reaches the loss through a slice too, but [:, :2] keeps part of what mean() made
    # of every position: a route is "partly read" whenever it passes such an op.
    assert _by_name(names, s.partly_read) == {"body": True, "side": True, "head": False}
