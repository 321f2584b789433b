"""The recorder: hooks that measure a model during forward and backward passes.

:func:`gradcheck_cli.capture.capture` installs them. Gradient hooks on output tensors are removed
when their step ends and hold the recorder only weakly, so a tensor the model keeps carries
nothing of gradcheck's.

Cost matters (issue 5): hooks only launch small reductions and append 0-d tensors to lists. No
hook reads a value back to the host; :meth:`Recorder.end_step` moves everything in one transfer,
so there is one host synchronisation per step rather than one per layer. No activation or
gradient tensor is kept beyond what autograd keeps anyway.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from gradcheck_cli.aggregate import GraphFacts, StepRecord
from gradcheck_cli.choices import ShardMode
from gradcheck_cli.distributed import Merger, local_part
from gradcheck_cli.graph import trace
from gradcheck_cli.layer_facts import (
    all_tensors,
    first_tensor,
    own_parameters,
    param_norms,
    static_infos,
)
from gradcheck_cli.layers import (
    CHANNEL_FIRST_1D,
    DEAD_TYPES,
    MASKED_LOGIT,
    SOFTMAX_SATURATED,
    SOFTMAX_TYPES,
    saturation_bounds,
    softmax_dim,
)
from gradcheck_cli.stats import LayerKind

FP16_TINY = 2.0**-24  # float16's smallest subnormal, about 5.96e-8

# --- the recorder ------------------------------------------------------------------------------

# Quantities accumulated per layer from hook calls; each has its own slot block.
_NORMS = ("act", "out_grad", "in")  # accumulated as squared norms ("in": weight layers' inputs)
_COUNTS = ("dead", "saturated", "nf_act", "nf_out_grad")


class Recorder:
    """Collects one step's raw totals from the hooks; see :func:`capture`."""

    def __init__(self, model: nn.Module, targets: list[tuple[str, nn.Module, LayerKind]]):
        self.model = model
        self.count_nonfinite = False
        self.count_underflow = False
        self.active = True  # watch() switches the hooks off between the steps it samples
        # Under torchrun: merges each step's totals across the ranks (diagnose --shard).
        self.merger: Merger | None = None
        self._targets = targets
        self._modules = [m for _, m, _ in targets]
        self._layers = len(targets)
        self._params: list[torch.nn.Parameter] = []
        self._param_layer: list[int] = []
        for i, (_, module, _) in enumerate(targets):
            for p in own_parameters(module):
                if p.requires_grad:
                    self._params.append(p)
                    self._param_layer.append(i)
        self._graded: set[int] = set()  # indices into _params that got a gradient in a step
        # Gradient hooks on this step's output tensors. A model may keep an output
        # (self.last = y): its hook, and through it this recorder, must not outlive the step.
        self._tensor_hooks: list[RemovableHandle] = []
        self.infos, self._embedding_rows = static_infos(targets)
        self._reset()

    @property
    def layers(self) -> list[tuple[str, nn.Module]]:
        """The measured modules by name, in the order of :attr:`infos`."""
        return [(name, module) for name, module, _ in self._targets]

    def never_graded(self) -> list[tuple[int, nn.Parameter]]:
        """Trainable parameters that got no gradient in any step so far, each with the index of
        its layer: a module can be partly cut off (``self.scale.item()`` beside weights that
        train)."""
        return [
            (self._param_layer[k], p) for k, p in enumerate(self._params) if k not in self._graded
        ]

    def rebind_params(self) -> None:
        """Read the measured modules' parameters again: FSDP2 replaces them with sharded ones.
        The static facts (weight norms, init scales) stay those of the whole model."""
        self._params = [
            p for module in self._modules for p in own_parameters(module) if p.requires_grad
        ]

    def read_weights(self) -> None:
        """Read the static facts (weight norms, init scales) again: a meta-built model has
        values only once each rank has initialised its shards (summed over the ranks)."""
        infos, self._embedding_rows = static_infos(self._targets)
        # Type names stay those read before sharding (FSDP2 renames Linear to FSDPLinear).
        self.infos = [
            dataclasses.replace(new, type=old.type)
            for old, new in zip(self.infos, infos, strict=True)
        ]

    def structure(self, loss: torch.Tensor) -> GraphFacts:
        """Depth, paths and residual scales of the measured layers, from ``loss``'s graph."""
        return trace(
            loss,
            self._params,
            self._param_layer,
            self._layers,
            [info.scale_like for info in self.infos],
            self._softmaxes,
            [info.kind is LayerKind.NORM for info in self.infos],
        )

    def weight_norms(self) -> tuple[float, ...]:
        """Each measured layer's weight norm now (one transfer for all layers): for a training
        loop, whose weights change between measured steps (``watch()``)."""
        _, _, owner, host = param_norms(self._targets)
        sq = [0.0] * len(self._targets)
        for value, i in zip(host, owner, strict=True):
            sq[i] += value * value
        return tuple(math.sqrt(v) for v in sq)

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        """Count NaN/Inf exactly while the block runs, and locate the first module producing one.

        Used only to rerun a step whose totals were non-finite. Locator hooks go on every
        module, containers included, so a NaN made inside a parameter-free wrapper (a stray
        ``torch.log`` in a custom module's forward) is pinned on that wrapper: forward hooks
        fire when a module finishes, so the first to see NaN is the innermost culprit.
        """
        with contextlib.ExitStack() as stack:
            self.count_nonfinite = True
            stack.callback(setattr, self, "count_nonfinite", False)
            for name, module in self.model.named_modules():
                if isinstance(module, torch.jit.ScriptModule):
                    continue
                handle = module.register_forward_hook(self._locator_hook(name))
                stack.callback(handle.remove)
            yield

    @contextlib.contextmanager
    def counting_underflow(self) -> Iterator[None]:
        """Count, per layer, the gradient values float16 would flush to zero, while the block runs."""
        self.count_underflow = True
        try:
            yield
        finally:
            self.count_underflow = False

    def _locator_hook(self, name: str) -> Callable[..., None]:
        def hook(mod: nn.Module, args: Any, output: Any) -> None:
            # Every floating tensor of the output: a NaN in the second element of a tuple
            # (a head returning (mean, log_var)) is as much this module's as one in the first.
            flags = [
                torch.isfinite(t.detach()).logical_not().any()
                for t in all_tensors(output)
                if t.is_floating_point()
            ]
            if flags:
                self._located.append((name, torch.stack(flags).any()))

        return hook

    def _reset(self) -> None:
        self._located: list[tuple[str, torch.Tensor]] = []
        self._norm_vals: list[torch.Tensor] = []
        self._norm_slots: list[int] = []
        self._count_vals: list[torch.Tensor] = []
        self._count_slots: list[int] = []
        self._worst_vals: list[torch.Tensor] = []  # a count per call...
        self._worst_numel: list[int] = []  # ...out of this many values
        self._worst_slots: list[int] = []
        # Per call of a ReLU, its per-unit maxima: dead units are counted from them when the step
        # ends (_count_dead), or once they are merged across the ranks (_merge_ranks).
        self._peaks: list[tuple[int, torch.Tensor]] = []
        self._act_numel = [0] * self._layers
        self._in_numel = [0] * self._layers
        self._act_rows = [0] * self._layers
        self._softmaxes: set[Any] = set()  # graph nodes of nn.Softmax outputs (measured here)
        self._out_grad_numel = [0] * self._layers
        self._units = [0] * self._layers
        self._sat_numel = [0] * self._layers
        self._calls = [0] * self._layers
        self._order = [-1] * self._layers
        self._feeds_norm = [False] * self._layers
        self._next_order = 0
        self._last_weight: tuple[weakref.ReferenceType[torch.Tensor], int] | None = None
        self._last_weight_type: type[nn.Module] | None = None
        self._last_output: tuple[weakref.ReferenceType[torch.Tensor], int, torch.Tensor] | None = (
            None
        )

    # hook factories: each returns a closure over the layer index ------------------------------

    def forward_hook(self, i: int, kind: LayerKind) -> Callable[..., None]:
        """A forward hook measuring layer ``i``'s output and hooking its gradient."""
        module = self._modules[i]
        bounds = saturation_bounds(module)
        dead = isinstance(module, DEAD_TYPES)
        softmax = isinstance(module, SOFTMAX_TYPES)
        log_probs = isinstance(module, nn.LogSoftmax)
        # The gradient at an activation's output is the one its neighbours already report;
        # skipping it saves a hook per activation call (the per-layer cost that matters in
        # deep, narrow nets). One closure per layer, made once, not one per call.
        grad_hook = None if kind is LayerKind.ACTIVATION else self._grad_hook(i)

        def hook(mod: nn.Module, args: Any, output: Any) -> None:
            if not self.active:
                return
            self._calls[i] += 1
            if self._order[i] < 0:
                self._order[i] = self._next_order
                self._next_order += 1
            t = first_tensor(output)
            if t is None or not t.is_floating_point():
                return
            if kind is LayerKind.WEIGHT:
                self._last_weight = (weakref.ref(t), i)
                self._last_weight_type = type(mod)
                # The forward signal a weight layer receives: for the output layer, the
                # features the whole network delivers (vanishing's ``signal`` rule).
                x_in = first_tensor(args)
                if x_in is not None and x_in.is_floating_point() and x_in.numel():
                    self._add_input_norm(i, x_in)
                    self._in_numel[i] += x_in.numel()
            x = t.detach()
            self._add_norm(0, i, x)
            # The next layer's input is often this output (an activation, then a Linear).
            self._last_output = (weakref.ref(t), t._version, self._norm_vals[-1])
            self._act_numel[i] += x.numel()
            # Rows (tokens, samples) this call processed: how many a router sent to an expert.
            self._act_rows[i] += x.numel() // x.shape[-1] if x.dim() and x.shape[-1] else 0
            if self.count_nonfinite:
                self._add_count(2, i, torch.isfinite(x).logical_not().sum())
            if dead and x.dim() >= 2:
                self._add_dead(i, x)
            if bounds is not None:
                lo, hi = bounds
                flat = ((x <= lo) | (x >= hi)).sum()
                self._add_count(1, i, flat)
                self._add_worst(1, i, flat, x.numel())
                self._sat_numel[i] += x.numel()
            if softmax and t.grad_fn is not None:
                self._softmaxes.add(t.grad_fn)
            if softmax and x.dim() and x.numel():
                # Saturated rows: one output takes (nearly) all the probability. A row masked
                # down to one open entry (-inf, -1e4 or dtype-min logits elsewhere: causal or
                # padding masks) is certain by construction, not saturated.
                dim = softmax_dim(mod, x)
                peak = x.amax(dim=dim)
                if log_probs:
                    peak = peak.exp()
                saturated = peak >= SOFTMAX_SATURATED
                logits = args[0] if args and isinstance(args[0], torch.Tensor) else None
                if logits is not None and logits.shape == x.shape:
                    saturated &= (logits.detach() > MASKED_LOGIT).sum(dim=dim) >= 2
                self._add_count(1, i, saturated.sum())
                self._add_worst(1, i, saturated.sum(), peak.numel())
                self._sat_numel[i] += peak.numel()
            if grad_hook is not None and t.requires_grad:
                self._tensor_hooks.append(t.register_hook(grad_hook))

        return hook

    def norm_pre_hook(self, i: int) -> Callable[..., None]:
        """A pre-hook on a normaliser: marks the weight layer whose output it normalises."""

        def hook(mod: nn.Module, args: Any) -> None:
            if self._last_weight is None or not args:
                return
            ref, source = self._last_weight
            if ref() is args[0]:
                self._feeds_norm[source] = True

        return hook

    def _grad_hook(self, i: int) -> Callable[[torch.Tensor], None]:
        # A weak reference: a hook that somehow outlives its handle keeps no recorder alive.
        owner = weakref.ref(self)

        def hook(grad: torch.Tensor) -> None:
            recorder = owner()
            if recorder is None:
                return
            recorder._add_norm(1, i, grad)
            recorder._out_grad_numel[i] += grad.numel()
            if recorder.count_nonfinite:
                recorder._add_count(3, i, torch.isfinite(grad).logical_not().sum())

        return hook

    def release_tensor_hooks(self) -> None:
        """Remove the gradient hooks put on output tensors (after backward, and on exit)."""
        for handle in self._tensor_hooks:
            handle.remove()
        self._tensor_hooks.clear()

    def _add_norm(self, quantity: int, i: int, x: torch.Tensor) -> None:
        # Half-precision values are accumulated in float32; float64 ones (which vector_norm will
        # not narrow) in float64, then stored as float32 like the rest.
        if x.dtype == torch.float64:
            self._norm_vals.append(torch.linalg.vector_norm(x).float())
        else:
            self._norm_vals.append(torch.linalg.vector_norm(x, dtype=torch.float32))
        self._norm_slots.append(quantity * self._layers + i)

    def _add_input_norm(self, i: int, x: torch.Tensor) -> None:
        """A weight layer's input norm: that of the last measured output when the input is that
        very tensor, unchanged since (its version counter moves with every in-place write)."""
        if self._last_output is not None:
            ref, version, norm = self._last_output
            if ref() is x and x._version == version:
                self._norm_vals.append(norm)
                self._norm_slots.append(2 * self._layers + i)
                return
        self._add_norm(2, i, x.detach())

    def _add_worst(self, quantity: int, i: int, count: torch.Tensor, numel: int) -> None:
        # The worst call's fraction: one shared nn.Sigmoid() saturated at its first call site
        # and fine at five others is a saturated layer, not a sixth of one.
        if numel:
            self._worst_vals.append(count)  # made float64 when the step's counts are stacked
            self._worst_numel.append(numel)
            self._worst_slots.append(quantity * self._layers + i)

    def _add_count(self, quantity: int, i: int, count: torch.Tensor) -> None:
        self._count_vals.append(count)
        self._count_slots.append(quantity * self._layers + i)

    def _add_dead(self, i: int, x: torch.Tensor) -> None:
        # A unit is a feature (Linear) or a channel (Conv): dead when it is <= 0 for every
        # sample and position of the batch, so its incoming weights get no gradient at all.
        if x.dim() == 2 or x.dim() >= 4:
            unit_dim = 1
        else:
            channel_first = self._last_weight_type is not None and issubclass(
                self._last_weight_type, CHANNEL_FIRST_1D
            )
            unit_dim = 1 if channel_first else x.dim() - 1
        other = [d for d in range(x.dim()) if d != unit_dim]
        # The maxima are this call's own tensor: nothing the model does after the hook can
        # change them before they are counted. (Dead on one rank's slice is not dead: under
        # --shard they are counted once merged.)
        self._peaks.append((i, x.amax(dim=other)))
        self._units[i] += x.shape[unit_dim]

    def _count_dead(self) -> None:
        """Dead units of this step's calls, from the per-unit maxima their hooks kept: one
        comparison and one sum for all the calls whose maxima have one shape, where two per
        call cost 2-3 us each on a CPU (two of the four operations of a ReLU's hook)."""
        by_shape: dict[torch.Size, list[tuple[int, torch.Tensor]]] = {}
        for i, peak in self._peaks:
            by_shape.setdefault(peak.shape, []).append((i, peak))
        for shape, calls in by_shape.items():
            peaks = _stacked([peak for _, peak in calls], calls[0][1].device)
            dead = (peaks <= 0).reshape(len(calls), -1).sum(dim=1)
            for (i, _), count in zip(calls, dead.unbind(), strict=True):
                self._add_count(0, i, count)
                self._add_worst(0, i, count, shape.numel())
        self._peaks.clear()

    # per-step bookkeeping ---------------------------------------------------------------------

    def begin_step(self, *, clear_grads: bool = True) -> None:
        """Forget the previous step and (unless watching a training loop) clear gradients."""
        self.release_tensor_hooks()
        self._reset()
        self.active = True
        if clear_grads:
            for p in self._params:
                p.grad = None

    def end_step(self, loss: torch.Tensor) -> StepRecord:
        """Reduce this step's values on the device and bring them to the host in one transfer.

        The step's backward pass is over: its gradient hooks are removed first.
        """
        self.release_tensor_hooks()
        if self.merger is None:
            self._count_dead()
        n = self._layers
        device = loss.device
        grads = [p.grad for p in self._params]
        present = [(g, self._param_layer[k]) for k, g in enumerate(grads) if g is not None]
        self._graded.update(k for k, g in enumerate(grads) if g is not None)
        has_grad = [False] * n
        grad_numel = [0] * n
        for k, g in enumerate(grads):
            if g is not None:
                has_grad[self._param_layer[k]] = True
                grad_numel[self._param_layer[k]] += g.numel()
        # An FSDP2 gradient (a DTensor) is measured on this rank's shard; merged below.
        dense = [g.coalesce().values() if g.is_sparse else local_part(g)[0] for g, _ in present]
        if dense:
            squares = torch.stack(torch._foreach_norm(dense)).double().square().to(device)
            owners = torch.tensor([layer for _, layer in present], device=device)
            grad_sq = torch.zeros(n, dtype=torch.float64, device=device).index_add_(
                0, owners, squares
            )
            nf = (
                [torch.isfinite(g).logical_not().sum() for g in dense]
                if self.count_nonfinite
                else []
            )
            nf_grad = torch.zeros(n, dtype=torch.float64, device=device)
            if nf:
                nf_grad.index_add_(0, owners, torch.stack(nf).double().to(device))
        else:
            grad_sq = torch.zeros(n, dtype=torch.float64, device=device)
            nf_grad = torch.zeros(n, dtype=torch.float64, device=device)
        used = torch.zeros(n, dtype=torch.float64, device=device)
        for i, rows in self._embedding_rows.items():
            g = self._params[self._param_layer.index(i)].grad
            if g is None:
                continue
            if g.is_sparse:
                # nn.Embedding(sparse=True): the rows are the indices of the sparse gradient
                # (counting none of them left the ratio at gradient / 0 = inf).
                g = g.coalesce()
                nonzero = torch.linalg.vector_norm(g.values(), dim=-1) > 0
                used[i] = rows[g.indices()[0][nonzero]].sum()
            else:
                part, first = local_part(g)
                touched = torch.linalg.vector_norm(part, dim=-1) > 0
                used[i] = (rows[first : first + part.shape[0]] * touched).sum()
        underflow = torch.zeros(n, dtype=torch.float64, device=device)
        if self.count_underflow and dense:
            # Nonzero values below 2**-24, float16's smallest subnormal, become zero in fp16.
            tiny = [((g != 0) & (g.abs() < FP16_TINY)).sum() for g in dense]
            underflow.index_add_(0, owners, torch.stack(tiny).double().to(device))
        loss_value_t = loss.detach().double().reshape(1)
        norms = self._reduce(self._norm_vals, self._norm_slots, len(_NORMS), square=True)
        counts = self._reduce(self._count_vals, self._count_slots, len(_COUNTS), square=False)
        flags = (
            torch.stack([flag for _, flag in self._located]).double().to(device)
            if self._located
            else torch.zeros(0, dtype=torch.float64, device=device)
        )
        if self.merger is not None:
            loss_value_t, norms, counts, flags, (grad_sq, used, nf_grad, underflow) = (
                self._merge_ranks(
                    self.merger,
                    loss_value_t,
                    norms.to(device),
                    counts.to(device),
                    flags,
                    [grad_sq, used, nf_grad, underflow],
                    device,
                )
            )
        pieces = [loss_value_t, norms, counts, grad_sq, used, nf_grad, underflow]
        pieces += [self._reduce_worst(device), flags]
        host = torch.cat([p.to(device) for p in pieces]).cpu().tolist()  # the one sync
        loss_value = host[0]
        # The host copy, cut back into the blocks of n values appended above, in order.
        blocks = iter(host[1 + k * n : 1 + (k + 1) * n] for k in range(len(host) // max(n, 1)))
        act, out_grad, inputs = (next(blocks) for _ in _NORMS)
        dead, sat, nf_act, nf_out = (next(blocks) for _ in _COUNTS)
        grad_sq_h, used_h, nf_grad_h, underflow_h, dead_worst, sat_worst = (
            next(blocks) for _ in range(6)
        )
        counted = self.count_nonfinite
        located = host[1 + (len(_NORMS) + len(_COUNTS) + 6) * n :]
        first_forward = next(
            (name for (name, _), bad in zip(self._located, located, strict=True) if bad), None
        )
        return StepRecord(
            loss=loss_value,
            order=tuple(self._order),
            calls=tuple(self._calls),
            act_sumsq=tuple(act),
            act_numel=tuple(self._act_numel),
            act_rows=tuple(self._act_rows),
            in_sumsq=tuple(inputs),
            in_numel=tuple(self._in_numel),
            dead_worst=tuple(dead_worst),
            saturated_worst=tuple(sat_worst),
            out_grad_sumsq=tuple(out_grad),
            out_grad_numel=tuple(self._out_grad_numel),
            grad_sumsq=tuple(grad_sq_h),
            grad_numel=tuple(grad_numel),
            grad_none=tuple(not h for h in has_grad),
            used_weight_sumsq=tuple(used_h),
            dead=tuple(dead),
            units=tuple(self._units),
            saturated=tuple(sat),
            sat_numel=tuple(self._sat_numel),
            feeds_norm=tuple(self._feeds_norm),
            nonfinite_act=tuple(int(v) for v in nf_act) if counted else None,
            nonfinite_out_grad=tuple(int(v) for v in nf_out) if counted else None,
            nonfinite_grad=tuple(int(v) for v in nf_grad_h) if counted else None,
            first_nonfinite_module=first_forward,
            underflow=tuple(int(v) for v in underflow_h) if self.count_underflow else None,
        )

    def _reduce_worst(self, device: torch.device) -> torch.Tensor:
        """Per layer, the largest dead and saturated fractions of any one call (2 x layers)."""
        out = torch.zeros(2 * self._layers, dtype=torch.float64, device=device)
        if self._worst_vals:
            stacked = _stacked(self._worst_vals, device).double()
            numel = torch.tensor(self._worst_numel, dtype=torch.float64, device=device)
            index = torch.tensor(self._worst_slots, device=device)
            out.scatter_reduce_(0, index, stacked / numel, reduce="amax")
        return out

    def _merge_ranks(
        self,
        merger: Merger,
        loss: torch.Tensor,
        norms: torch.Tensor,
        counts: torch.Tensor,
        flags: torch.Tensor,
        grads: list[torch.Tensor],
        device: torch.device,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """This step's totals over every rank (see :mod:`gradcheck_cli.distributed`): the mean
        loss, sums of squares and counts, per-call counts and sizes, and, from the per-unit
        maxima, the dead units; the sizes counted in Python are replaced by their totals. The
        parameter-gradient totals ``grads`` add up over the shards under FSDP; under DDP every
        rank already holds the averaged gradients."""
        n = self._layers
        calls = len(self._worst_numel)
        sizes = torch.tensor(
            [
                *self._act_numel,
                *self._in_numel,
                *self._act_rows,
                *self._out_grad_numel,
                *self._sat_numel,
                *self._worst_numel,
            ],
            dtype=torch.float64,
            device=device,
        )
        worst = torch.stack(
            [v.to(device).double() for v in self._worst_vals]
            or [torch.zeros((), dtype=torch.float64, device=device)]
        )[:calls]
        sharded = merger.shard.mode is ShardMode.FSDP
        (loss, norms, counts, sizes, worst, *summed), (flags, *peaks) = merger.merge(
            [loss, norms, counts, sizes, worst, *(grads if sharded else [])],
            [flags, *(p.to(device) for _, p in self._peaks)],
        )
        if sharded:
            grads = summed
        world = merger.shard.world
        # Each rank's loss is a mean over its slice, so the gradient reaching one of its
        # samples is `world` times its share of the mean over the whole batch.
        norms[n : 2 * n] /= world * world
        sizes_h = [int(v) for v in sizes.tolist()]
        self._act_numel, self._in_numel, self._act_rows, self._out_grad_numel, self._sat_numel = (
            sizes_h[k * n : (k + 1) * n] for k in range(5)
        )
        self._worst_numel = sizes_h[5 * n :]
        self._worst_vals = list(worst.unbind())
        # A unit is dead when it is dead on every rank's slice: its largest output is <= 0.
        for (i, _), peak in zip(self._peaks, peaks, strict=True):
            dead = (peak <= 0).sum()
            counts[i] += dead  # quantity 0 of _COUNTS
            self._worst_vals.append(dead.double())
            self._worst_numel.append(peak.numel())
            self._worst_slots.append(i)
        return loss / world, norms, counts, flags, grads

    def _reduce(
        self, vals: list[torch.Tensor], slots: list[int], quantities: int, *, square: bool
    ) -> torch.Tensor:
        device = next((v.device for v in vals), torch.device("cpu"))
        out = torch.zeros(quantities * self._layers, dtype=torch.float64, device=device)
        if vals:
            stacked = _stacked(vals, device).double()
            if square:
                stacked = stacked.square()
            out.index_add_(0, torch.tensor(slots, device=device), stacked)
        return out


def _stacked(values: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """``values`` (of one shape, one per hook call) as one tensor on ``device``: stacked where
    they lie, then moved once; one by one only when they lie on several devices (a model split
    over GPUs). A ``.to()`` per value doubled the cost of stacking them (0.48 against 0.25 us
    per value on this project's CPU), for several hundred values per step."""
    try:
        return torch.stack(values).to(device)
    except RuntimeError:
        return torch.stack([v.to(device) for v in values])
