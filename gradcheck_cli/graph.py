"""The model's structure as the autograd graph of one loss shows it: depth, paths, residual scales.

Forward call order is not depth: in a model with branches, several inputs or several heads
(a CNN and an MLP fused into two heads, a U-Net, an encoder-decoder) the layer called last need
not be the one next to the loss. This module walks the graph that ``loss.backward()`` will
traverse, once, before backward runs, and reads three facts per measured layer from it:

- **depth**: the number of measured layers on the longest route from the loss down to the layer
  (1 for an output layer), and its **successor**, the next layer toward the loss on that route.
  Following successors from an input layer gives the path along which the depth rules look for
  a geometric trend.
- **input**: no other measured layer lies below it (it reads the model's inputs).
- **residual scale**: every parameter of the layer is a per-channel or scalar factor that
  multiplies a branch which is then added to something, as LayerScale (Touvron et al. 2021),
  ReZero (Bachlechner et al. 2020), SkipInit (De & Smith 2020) and zero-initialised gates are.
  Such a factor is small by design; the layers behind it get a gradient scaled by it.

A layer *enters* the graph at the node that combines its parameters (or a function of them
alone, such as ``weight.t()`` or ``tanh(gate)``) with anything else. Nothing here touches hooks
or keeps a reference to the graph after it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from gradcheck_cli.aggregate import GraphFacts, SoftmaxRows
from gradcheck_cli.layers import SOFTMAX_SATURATED

# Nodes that pass "a function of one layer's parameters alone" up the graph.
_PARAM_OPS = frozenset(
    {
        "TBackward0",
        "ViewBackward0",
        "ReshapeAliasBackward0",
        "UnsafeViewBackward0",
        "ExpandBackward0",
        "PermuteBackward0",
        "TransposeBackward0",
        "UnsqueezeBackward0",
        "SqueezeBackward0",
        "SqueezeBackward1",
        "CloneBackward0",
        "ToCopyBackward0",
        "AliasBackward0",
        "SelectBackward0",
        "SliceBackward0",
        "SplitBackward0",
        "UnbindBackward0",
        "TanhBackward0",
        "SigmoidBackward0",
        "ExpBackward0",
        "SoftplusBackward0",
        "NegBackward0",
        "RsubBackward0",
        "RsubBackward1",
        "AbsBackward0",
        "MulBackward0",
        "MulBackward1",
        "DivBackward0",
        "DivBackward1",
        "AddBackward0",
        "AddBackward1",
        "SubBackward0",
        "SubBackward1",
        "PowBackward0",
        "SqrtBackward0",
        "RsqrtBackward0",
        "NormBackward1",
        "LinalgVectorNormBackward0",
    }
)
_ADD = frozenset({"AddBackward0", "AddBackward1"})
# Where a scaled branch rejoins its input: a residual sum, or a dense connection (RDNet, DenseNet).
_MERGE = _ADD | {"CatBackward0"}
_LINEAR = frozenset({"ConvolutionBackward0", "AddmmBackward0", "MmBackward0"})
_HOMOGENEOUS = frozenset(
    {
        "ReluBackward0",
        "LeakyReluBackward0",
        "GeluBackward0",
        "SiluBackward0",
        "HardswishBackward0",
        "EluBackward0",
    }
)
_RESHAPE = frozenset(
    {
        "ViewBackward0",
        "ReshapeAliasBackward0",
        "UnsafeViewBackward0",
        "PermuteBackward0",
        "TransposeBackward0",
        "CloneBackward0",
        "SqueezeBackward0",
        "SqueezeBackward1",
        "UnsqueezeBackward0",
    }
)
# Nodes through which a scaled branch may pass before it is added to the residual stream:
# reshapes and the stochastic-depth / dropout multiply-and-divide (timm's drop_path).
_ON_THE_WAY = _RESHAPE | {
    "MulBackward0",
    "DivBackward0",
    "ExpandBackward0",
    "NativeDropoutBackward0",
    "ToCopyBackward0",
}
_MUL = frozenset({"MulBackward0"})
_MATMUL = frozenset({"BmmBackward0", "MmBackward0", "MatmulBackward0", "BaddbmmBackward0"})
# How a router's top-k probabilities are picked out before they gate the experts' outputs.
_SELECT = frozenset(
    {
        "TopkBackward0",
        "MaxBackward0",
        "GatherBackward0",
        "IndexBackward0",
        "SelectBackward0",
        "SliceBackward0",
    }
)
# Ops whose gradient for (one of) their inputs is zero at the positions they do not keep:
# indexing, slicing, gathering, masking, and writes that overwrite part of a tensor.
_DISCARDING = frozenset(
    {
        "SelectBackward0",
        "SliceBackward0",
        "IndexBackward0",
        "IndexPutBackward0",
        "IndexSelectBackward0",
        "GatherBackward0",
        "TakeBackward0",
        "MaskedFillBackward0",
        "MaskedScatterBackward0",
        "MaskedSelectBackward0",
        "CopySlices",
    }
)
_HOPS = 4  # how far a scaled branch may travel toward the loss before it must be added


def trace(
    loss: torch.Tensor,
    params: Sequence[torch.Tensor],
    owners: Sequence[int],
    layers: int,
    scale_like: Sequence[bool],
    skip: set[Any] | None = None,
    norms: Sequence[bool] = (),
) -> GraphFacts:
    """Read :class:`GraphFacts` from the graph below ``loss``.

    ``params[k]`` belongs to layer ``owners[k]``; ``scale_like[i]`` says whether every
    parameter of layer ``i`` has the shape of a scalar or per-channel factor (the caller knows
    the modules; only those layers can be residual scales); ``skip`` holds the graph nodes of
    softmax outputs that measured ``nn.Softmax`` modules made (measured by their hooks);
    ``norms[i]`` says whether layer ``i`` is a normaliser.
    """
    skip = skip or set()
    if loss.grad_fn is None:
        return GraphFacts.unknown(layers)
    owner_of: dict[int, int] = {}
    for p, i in zip(params, owners, strict=True):
        owner_of.setdefault(id(p), i)  # a tied weight belongs to the layer registered first
    order, parents, kids = _topological(loss.grad_fn)
    pure = _pure(order, kids, owner_of)
    touches: dict[Any, set[int]] = {
        node: {layer for c in kids[node] if (layer := pure.get(c)) is not None}
        for node in order
        if pure.get(node) is None
    }
    depth, successor = _longest_routes(order, kids, pure, touches, layers)
    is_input = _inputs(order, kids, pure, touches, layers)
    score = _attention_scores(order, kids, parents, touches, layers)
    residual = [False] * layers
    entering: dict[int, list[Any]] = {}
    for node, found in touches.items():
        for layer in found:
            entering.setdefault(layer, []).append(node)
    for layer, nodes in entering.items():
        residual[layer] = scale_like[layer] and all(
            _name(n) in _MUL and _reaches_add(n, parents) for n in nodes
        )
    return GraphFacts(
        tuple(depth),
        tuple(successor),
        tuple(is_input),
        tuple(residual),
        tuple(score),
        _softmax_rows(order, touches, skip),
        tuple(_feeding_norms(touches, pure, norms, layers)),
        tuple(_partly_read(order, parents, entering, layers)),
    )


def _partly_read(
    order: list[Any], parents: dict[Any, list[Any]], entering: dict[int, list[Any]], layers: int
) -> list[bool]:
    """Layers every route of which to the loss passes an op that keeps only part of its input
    (``hidden[:, 0]`` of a [CLS] classifier, the last token's logits, an overwrite of the
    positions under global attention): the loss may read none of the positions they affect."""
    behind: dict[Any, bool] = {}
    for node in order:  # every node before its children: its parents are settled
        above = parents.get(node, [])
        behind[node] = bool(above) and all(_discards(p, parents) or behind[p] for p in above)
    partly = [False] * layers
    for layer, nodes in entering.items():
        partly[layer] = all(behind.get(n, False) for n in nodes)
    return partly


def _discards(node: Any, parents: dict[Any, list[Any]]) -> bool:
    """Whether ``node`` passes on only part of its input: an index or slice, or a split whose
    outputs are not all used under the loss (CvT's last stage splits off its [CLS] token and
    the classifier reads only that: the spatial rows reach no loss)."""
    if _name(node) in _DISCARDING:
        return True
    if _name(node) == "SplitWithSizesBackward0":
        outputs = len(getattr(node, "_saved_split_sizes", ()) or ())
    elif _name(node) == "SplitBackward0":
        sizes, dim = getattr(node, "_saved_self_sym_sizes", ()), _signed(node, "_saved_dim")
        step = getattr(node, "_saved_split_size", 0)
        if dim is None or not sizes or not isinstance(step, int) or step <= 0:
            return False
        outputs = -(-int(sizes[dim]) // step)
    else:
        return False
    used = {
        nr for above in parents.get(node, []) for child, nr in above.next_functions if child is node
    }
    return len(used) < outputs


def _feeding_norms(
    touches: dict[Any, set[int]], pure: dict[Any, int | None], norms: Sequence[bool], layers: int
) -> list[bool]:
    """Layers whose output reaches a normaliser through reshapes, ReLU-like activations and
    other linear layers alone, or concatenated along channels with others into a BatchNorm
    (NASNet's factorised reduction: two convs, torch.cat, BatchNorm): Levit's Linear then BatchNorm1d over
    ``x.flatten(0, 1)``;
    ConvMixer's conv, GELU, BatchNorm; a separable conv's depthwise then pointwise conv, then
    BatchNorm (NASNet). Their weights are scale-invariant (exactly through ReLU, positively
    homogeneous, and linear layers up to their bias; nearly through GELU/SiLU), as when the
    normaliser takes the output itself."""
    feeding = [False] * layers
    for node, entered in touches.items():
        if not any(norms[i] for i in entered if i < len(norms)):
            continue
        frontier = [c for c in _children(node) if pure.get(c) is None]
        per_channel = "BatchNorm" in _name(node)  # statistics per channel (dim 1)
        for _ in range(_HOPS + 4):
            following = []
            for current in frontier:
                below = [c for c in _children(current) if pure.get(c) is None]
                found = touches.get(current)
                if found:
                    if any(norms[i] for i in found):
                        continue  # another normaliser: it speaks for what is below it
                    for layer in found:
                        feeding[layer] = True
                    if _name(current) in _LINEAR and len(below) == 1:
                        following.append(below[0])  # through a linear layer, on to its input
                elif _name(current) in _RESHAPE | _HOMOGENEOUS and len(below) == 1:
                    following.append(below[0])
                elif (
                    per_channel
                    and _name(current) == "CatBackward0"
                    and _signed(current, "_saved_dim") == 1
                ):
                    following.extend(below)  # channels side by side: each normalised alone
            frontier = following
    return feeding


def _softmax_rows(
    order: list[Any], touches: dict[Any, set[int]], skip: set[Any]
) -> tuple[SoftmaxRows, ...]:
    """Saturated rows of every softmax in the graph that no measured nn.Softmax module made.

    Read from the probabilities autograd saves for the backward pass. A row is saturated when
    its largest probability is at least 0.99 and at least two entries are nonzero: a row that
    a mask leaves one entry is certain by construction (its logits are not known here, so a
    row whose every other entry underflowed is not counted either: the count is a floor).
    """
    found = []
    for node in order:
        if _name(node) not in ("SoftmaxBackward0", "SafeSoftmaxBackward0") or node in skip:
            continue
        probs = getattr(node, "_saved_result", None)
        if not isinstance(probs, torch.Tensor) or probs.dim() == 0 or not probs.numel():
            continue
        dim = _signed(node, "_saved_dim")
        dim = -1 if dim is None else dim
        with torch.no_grad():
            saturated = (probs.amax(dim=dim) >= SOFTMAX_SATURATED) & ((probs > 0).sum(dim=dim) >= 2)
            count = int(saturated.sum())
        feeders = tuple(sorted(_entering_below([node], touches)))
        found.append(SoftmaxRows(feeders, count, saturated.numel()))
    return tuple(found)


def _signed(node: Any, attribute: str) -> int | None:
    """A saved integer argument of a graph node; negative ones come back as unsigned 64-bit."""
    value = getattr(node, attribute, None)
    if not isinstance(value, int):
        return None
    return value - 2**64 if value >= 2**63 else value


def _name(node: Any) -> str:
    return type(node).__name__


def _children(node: Any) -> list[Any]:
    return [child for child, _ in node.next_functions if child is not None]


def _topological(root: Any) -> tuple[list[Any], dict[Any, list[Any]], dict[Any, list[Any]]]:
    """Nodes reachable from ``root``, every node before its children; each node's parents; and
    each node's children (read once: ``next_functions`` builds new tuples at every call, about
    1 us, and the passes below visit each node several times).

    An iterative depth-first search that marks a node when it is expanded, not when it is
    pushed: a node reached again from another parent before its expansion is pushed again, so
    it finishes before every parent (a correct post-order, reversed).
    """
    parents: dict[Any, list[Any]] = {root: []}
    kids: dict[Any, list[Any]] = {}
    post: list[Any] = []
    stack: list[tuple[Any, bool]] = [(root, False)]
    expanded: set[Any] = set()
    linked: set[Any] = set()
    while stack:
        node, done = stack.pop()
        if done:
            post.append(node)
            continue
        if node in expanded:
            continue
        expanded.add(node)
        stack.append((node, True))
        kids[node] = _children(node)
        for child in kids[node]:
            if (node, child) not in linked:  # the same edge twice (x * x) is one parent
                linked.add((node, child))
                parents.setdefault(child, []).append(node)
            if child not in expanded:
                stack.append((child, False))
    post.reverse()
    return post, parents, kids


def _pure(
    order: list[Any], kids: dict[Any, list[Any]], owner_of: dict[int, int]
) -> dict[Any, int | None]:
    """For each node, the layer whose parameters alone it is a function of, else None.

    Only reshapes, casts and elementwise arithmetic pass purity up (``weight.t()``,
    ``tanh(gate)``, a weight-norm ``g * v / ||v||``): a matmul or convolution of parameters with
    an input that does not require grad (the first layer) has only parameter children, but it
    is where that layer enters, not part of its parameters.
    """
    pure: dict[Any, int | None] = {}
    for node in reversed(order):  # children first
        if _name(node) == "AccumulateGrad":
            pure[node] = owner_of.get(id(node.variable))
            continue
        if _name(node) not in _PARAM_OPS:
            pure[node] = None
            continue
        found = {pure.get(c) for c in kids[node]}
        pure[node] = found.pop() if len(found) == 1 else None
    return pure


def _longest_routes(
    order: list[Any],
    kids: dict[Any, list[Any]],
    pure: dict[Any, int | None],
    touches: dict[Any, set[int]],
    layers: int,
) -> tuple[list[int], list[int]]:
    """Longest route from the loss, counted in layers entered, and the layer before each.

    Several layers can enter at one node (a learned positional table added to the input of the
    first layer): each gets that node's depth.
    """
    # Per node: (layers on the best route, the layer last entered, the layer entered before it)
    best: dict[Any, tuple[int, int, int]] = {order[0]: (0, -1, -1)}
    depth = [0] * layers
    successor = [-1] * layers
    for node in order:
        if node not in best or pure.get(node) is not None:
            continue
        count, last, before = best[node]
        for layer in touches.get(node, ()):
            if count > depth[layer]:
                depth[layer], successor[layer] = count, before
        for child in kids[node]:
            if pure.get(child) is not None:
                continue
            entered = touches.get(child, set())
            if entered and last not in entered:
                candidate = (count + 1, min(entered), last)
            else:
                candidate = (count, last, before)
            if child not in best or candidate[0] > best[child][0]:
                best[child] = candidate
    return depth, successor


def _inputs(
    order: list[Any],
    kids: dict[Any, list[Any]],
    pure: dict[Any, int | None],
    touches: dict[Any, set[int]],
    layers: int,
) -> list[bool]:
    """Whether no other measured layer lies below any node where a layer enters."""
    below: dict[Any, frozenset[int]] = {}
    for node in reversed(order):
        found: set[int] = set()
        for child in kids[node]:
            layer = pure.get(child)
            found |= {layer} if layer is not None else below.get(child, frozenset())
            if len(found) > 2:
                break  # two layers are enough to know that one is not the node's own
        # Kept at three for the same reason: the whole set would grow with the depth below
        # (quadratic time over a 1,000-layer chain).
        below[node] = frozenset(found) if len(found) <= 3 else frozenset(list(found)[:3])
    entered = [False] * layers
    blocked = [False] * layers
    for node, found in touches.items():
        # What lies below the node other than the parameters entering there.
        under = {
            layer
            for child in kids[node]
            if pure.get(child) is None
            for layer in below.get(child, frozenset())
        }
        for layer in found:
            entered[layer] = True
            blocked[layer] = blocked[layer] or bool(under - {layer})
    return [seen and not other for seen, other in zip(entered, blocked, strict=True)]


def _attention_scores(
    order: list[Any],
    kids: dict[Any, list[Any]],
    parents: dict[Any, list[Any]],
    touches: dict[Any, set[int]],
    layers: int,
) -> list[bool]:
    """Layers that feed attention scores or router logits, not the values these weight.

    At initialisation the scores are near zero and the softmax near uniform, so the gradient
    of a query or key projection is second order, scaled by the other's small weights: two
    orders of magnitude below the rest of its block; a mixture-of-experts router's gradient
    comes through the gate values alone, likewise. Found as the layers met first below a
    softmax whose probabilities multiply values (or in the query/key slots of a fused
    scaled-dot-product attention), less those also met below the values (a fused QKV
    projection feeds both and stays in the ratio rules).
    """
    scores: set[int] = set()
    values: set[int] = set()
    for node in order:
        name = _name(node)
        children = kids[node]
        if "ScaledDotProduct" in name or "FlashAttention" in name:
            scores |= _entering_below(children[:2], touches)
            values |= _entering_below(children[2:3], touches)
        elif name in ("SoftmaxBackward0", "SafeSoftmaxBackward0"):
            weighting = _weighting(node, parents)
            if weighting is not None:
                scores |= _entering_below([node], touches)
                values |= _entering_below(
                    [c for c in _children(weighting) if c is not node and not _above(node, c)],
                    touches,
                )
    return [i in scores - values for i in range(layers)]


def _weighting(softmax: Any, parents: dict[Any, list[Any]]) -> Any | None:
    """The product that weights values by these probabilities: attention's matrix product, or
    a mixture-of-experts gate's multiply with an expert's output (top-k, gathers, dropout and
    views between). A multiply with one input that needs no gradient is a dropout mask."""
    return _first_above(
        softmax,
        parents,
        _HOPS + 2,
        _ON_THE_WAY | _SELECT,
        lambda n: _name(n) in _MATMUL or (_name(n) in _MUL and len(_children(n)) >= 2),
    )


def _first_above(
    node: Any,
    parents: dict[Any, list[Any]],
    hops: int,
    through: frozenset[str],
    wanted: Callable[[Any], bool],
) -> Any | None:
    """The first node toward the loss that ``wanted`` accepts, passing only ``through`` nodes,
    within ``hops`` steps; None when there is none."""
    frontier = [node]
    for _ in range(hops):
        following = []
        for current in frontier:
            for parent in parents.get(current, []):
                if wanted(parent):
                    return parent
                if _name(parent) in through:
                    following.append(parent)
        frontier = following
    return None


def _above(node: Any, child: Any) -> bool:
    """Whether ``child`` leads to ``node`` through views, dropout and top-k picks (the
    probabilities' side of the weighting product)."""
    current = child
    for _ in range(_HOPS + 3):
        if current is node:
            return True
        if _name(current) not in _ON_THE_WAY and _name(current) not in _SELECT:
            return False
        below = _children(current)
        if not below:
            return False
        current = below[0]
    return False


def _entering_below(starts: list[Any], touches: dict[Any, set[int]], limit: int = 64) -> set[int]:
    """The layers that enter first on the way down from ``starts`` (the nearest layers below)."""
    found: set[int] = set()
    stack = list(starts)
    seen: set[Any] = set()
    while stack and len(seen) < limit:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        entered = touches.get(node, set())
        if entered and node not in starts:
            found |= entered
            continue
        stack.extend(_children(node))
    return found


def _reaches_add(node: Any, parents: dict[Any, list[Any]]) -> bool:
    """Whether a multiply's result is added (or concatenated) to something within a few hops
    toward the loss."""
    found = _first_above(node, parents, _HOPS, _ON_THE_WAY, lambda n: _name(n) in _MERGE)
    return found is not None
