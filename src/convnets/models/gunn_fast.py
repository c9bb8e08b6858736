"""GUNN's gradual update at the simultaneous price (Qiao et al. 2018, Section 3.4, Algorithm 1).

Written out naively, Eq. 4 makes autograd keep one full copy of the N-channel state per
segment (every segment's first convolution saves the state it read). Algorithm 1 avoids
that: the forward pass updates one state buffer in place, and the backward pass walks
the segments in reverse, rebuilding each segment's input state from the layer's output
by writing the original segment back (``y_c <- x_c`` for c in c_i). What is kept for
backward is then the input, the output and each unit's inner activations, which sum
over the segments to exactly what the simultaneous layer keeps.

The state is held as one (B*H*W, N) matrix (channels last), so that a segment is a block
of columns and every 1x1 convolution is a single matrix product. A segment's first
convolution and its projection shortcut read the same state, so they are one product,
and their batch norms one call over the joined channels (batch norm is per channel).

Every group of tensors travels as a named record: a unit's parameters (and their
gradients) as :class:`UnitParams`, the projection's as :class:`ShortcutParams`, what one
unit keeps for one segment's backward pass as :class:`UnitSaved`. Autograd wants flat
tuples of tensors (``apply``'s arguments, ``save_for_backward``, ``backward``'s result);
:class:`LayerParams` and :class:`_Tape` are the only places that flatten and rebuild them.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import register_flop_formula

from . import narrow_batchnorm
from .batchnorm import running_factor, sync_backward, sync_forward, sync_group

if TYPE_CHECKING:
    from .gunn import BottleneckUnits, GunnLayer

__all__ = ["LayerParams", "UnitParams", "ShortcutParams", "UnitSaved", "FoldedUnit",
           "conv_bn_folded", "fold_into_conv", "fast_supported", "gradual_update", "is_folded"]


# --- named records ---------------------------------------------------------------------

class UnitParams(NamedTuple):
    """One stacked unit's parameters, or their gradients (``BottleneckUnits``' tensors)."""

    conv1: torch.Tensor
    bn1_weight: torch.Tensor
    bn1_bias: torch.Tensor
    conv2: torch.Tensor
    bn2_weight: torch.Tensor
    bn2_bias: torch.Tensor
    conv3: torch.Tensor
    bn3_weight: torch.Tensor
    bn3_bias: torch.Tensor


class ShortcutParams(NamedTuple):
    """The stacked projection shortcut's parameters, or their gradients."""

    conv: torch.Tensor
    bn_weight: torch.Tensor
    bn_bias: torch.Tensor


@dataclass(frozen=True)
class LayerParams:
    """A layer's parameters in the order the fast update takes and returns them: every
    unit's, then the shortcut's. ``flat``/``from_flat`` are the one flattening."""

    units: tuple[UnitParams, ...]
    shortcut: ShortcutParams | None

    @classmethod
    def of(cls, layer: "GunnLayer") -> "LayerParams":
        units = tuple(UnitParams(u.conv1.weight, u.bn1.weight, u.bn1.bias, u.conv2.weight,
                                 u.bn2.weight, u.bn2.bias, u.conv3.weight, u.bn3.weight, u.bn3.bias)
                      for u in layer.units)
        shortcut = None
        if layer.shortcut is not None:
            conv, bn = layer.shortcut[0], layer.shortcut[1]
            shortcut = ShortcutParams(conv.weight, bn.weight, bn.bias)
        return cls(units, shortcut)

    def flat(self) -> list[torch.Tensor]:
        return [t for u in self.units for t in u] + list(self.shortcut or ())

    @staticmethod
    def count(layer: "GunnLayer") -> int:
        """How many tensors ``flat`` gives for ``layer``."""
        shortcut = len(ShortcutParams._fields) if layer.shortcut is not None else 0
        return len(UnitParams._fields) * len(layer.units) + shortcut

    @classmethod
    def from_flat(cls, layer: "GunnLayer", flat) -> "LayerParams":
        if len(flat) != cls.count(layer):
            raise ValueError(f"{len(flat)} tensors are not the parameters of this layer")
        n = len(UnitParams._fields)
        units = tuple(UnitParams._make(flat[m * n:(m + 1) * n]) for m in range(len(layer.units)))
        rest = flat[len(units) * n:]
        return cls(units, ShortcutParams._make(rest) if layer.shortcut is not None else None)

    def cast(self, dtype: torch.dtype) -> "LayerParams":
        """Convolution weights in ``dtype`` (autocast's rule), batch norm's kept as they are."""
        def low(t: torch.Tensor) -> torch.Tensor:
            return t.to(dtype) if t.dim() > 1 else t
        return LayerParams(tuple(UnitParams(*map(low, u)) for u in self.units),
                           ShortcutParams(*map(low, self.shortcut)) if self.shortcut else None)


class UnitSaved(NamedTuple):
    """What one unit's forward pass for one segment keeps for the backward pass: each
    convolution's output before its BN, that BN's batch mean and inverse std, each ReLU's
    output, and (units after the first) the unit's input; the first reads the state,
    which the backward pass rebuilds instead."""

    h: torch.Tensor
    bn1_mean: torch.Tensor
    bn1_invstd: torch.Tensor
    r1: torch.Tensor
    c2: torch.Tensor
    bn2_mean: torch.Tensor
    bn2_invstd: torch.Tensor
    r2: torch.Tensor
    c3: torch.Tensor
    bn3_mean: torch.Tensor
    bn3_invstd: torch.Tensor
    g_in: torch.Tensor | None


@dataclass
class _Tape:
    """Everything the backward pass reads: the layer's input and output, its parameters,
    and per segment (outer) and unit (inner) a :class:`UnitSaved`."""

    x: torch.Tensor
    y: torch.Tensor
    params: LayerParams
    segments: list[list[UnitSaved]]

    def tensors(self) -> tuple[torch.Tensor | None, ...]:
        """The flat tuple ``save_for_backward`` takes (None for a first unit's ``g_in``)."""
        return (self.x, self.y, *self.params.flat(),
                *(t for seg in self.segments for rec in seg for t in rec))

    @classmethod
    def from_tensors(cls, layer: "GunnLayer", tensors) -> "_Tape":
        x, y, *rest = tensors
        n_params = LayerParams.count(layer)
        params = LayerParams.from_flat(layer, rest[:n_params])
        saved, n, units = rest[n_params:], len(UnitSaved._fields), len(layer.units)
        records = [UnitSaved._make(saved[k:k + n]) for k in range(0, len(saved), n)]
        return cls(x, y, params, [records[i:i + units] for i in range(0, len(records), units)])


class _BnRows(NamedTuple):
    """A stacked batch norm's parameters and statistics viewed as (P, channels): row i is
    segment i's. ``factor`` and ``eps`` are its running-average factor and epsilon."""

    weight: torch.Tensor
    bias: torch.Tensor
    running_mean: torch.Tensor
    running_var: torch.Tensor
    factor: float
    eps: float

    @classmethod
    def of(cls, bn: nn.BatchNorm2d, weight: torch.Tensor, bias: torch.Tensor,
           segments: int) -> "_BnRows":
        return cls(weight.view(segments, -1), bias.view(segments, -1),
                   bn.running_mean.view(segments, -1), bn.running_var.view(segments, -1),
                   running_factor(bn), bn.eps)

    def joined(self, other: "_BnRows") -> "_BnRows":
        """Each segment's channels of ``self`` followed by those of ``other``."""
        return _BnRows(*(torch.cat([a, b], 1) for a, b in zip(self[:4], other[:4])),
                       self.factor, self.eps)


class _UnitView:
    """One stacked unit's weights viewed per segment: index [i] gives segment i's rows.
    The first unit of a layer with a projection shortcut carries the shortcut's rows
    after its own (``extra`` of them) in ``w1`` and ``bn1``."""

    def __init__(self, mod: "BottleneckUnits", p: UnitParams, segments: int,
                 shortcut: tuple[nn.BatchNorm2d, ShortcutParams] | None) -> None:
        P, w, o = segments, mod.width, mod.out
        self.width, self.extra = w, 0
        self.w1 = p.conv1.reshape(P, w, -1)
        self.bn1 = _BnRows.of(mod.bn1, p.bn1_weight, p.bn1_bias, P)
        if shortcut is not None:  # join the projection (rows of the shortcut conv + BN)
            bn, sp = shortcut
            self.extra = o
            self.w1 = torch.cat([self.w1, sp.conv.reshape(P, o, -1)], 1)
            self.bn1 = self.bn1.joined(_BnRows.of(bn, sp.bn_weight, sp.bn_bias, P))
        self.w2 = p.conv2.view(P, w, w, *p.conv2.shape[2:])
        self.bn2 = _BnRows.of(mod.bn2, p.bn2_weight, p.bn2_bias, P)
        self.w3 = p.conv3.reshape(P, o, w)
        self.bn3 = _BnRows.of(mod.bn3, p.bn3_weight, p.bn3_bias, P)

    def zero_grads(self) -> UnitParams:
        """Gradient accumulators in this view's stacked (P, ...) layout."""
        z = torch.zeros_like
        return UnitParams(z(self.w1), z(self.bn1.weight), z(self.bn1.bias), z(self.w2),
                          z(self.bn2.weight), z(self.bn2.bias), z(self.w3), z(self.bn3.weight),
                          z(self.bn3.bias))


def _views(layer: "GunnLayer", params: LayerParams) -> list[_UnitView]:
    shortcut = None
    if params.shortcut is not None:
        shortcut = (layer.shortcut[1], params.shortcut)
    return [_UnitView(mod, p, layer.segments, shortcut if m == 0 else None)
            for m, (mod, p) in enumerate(zip(layer.units, params.units))]


class _Norm:
    """Batch norm in the fast update: the native kernels, or, when the layer's batch norms are
    synchronised over processes (see ``batchnorm.py``), the same computation with the forward
    statistics and the two backward sums all-reduced for each batch norm of each segment, in
    the same order on every process. Every batch norm of a layer normalises the same B*H*W
    rows per process, so one set of counts serves them all."""

    def __init__(self, layer: "GunnLayer") -> None:
        self.group, self.counts = sync_group(layer.units[0].bn1), None

    def forward(self, x: torch.Tensor, bn: _BnRows, i: int, train: bool):
        weight, bias = bn.weight[i], bn.bias[i]
        running_mean, running_var = bn.running_mean[i], bn.running_var[i]
        if self.group is None:
            k = narrow_batchnorm.fold_factor(x) if train else 1
            if k > 1:
                return narrow_batchnorm.forward(x, weight, bias, running_mean, running_var,
                                                bn.factor, bn.eps, k)
            return torch.native_batch_norm(x, weight, bias, running_mean, running_var, train,
                                           bn.factor, bn.eps)
        y, mean, invstd, self.counts = sync_forward(x, weight, bias, running_mean, running_var,
                                                    bn.factor, bn.eps, self.group)
        return y, mean, invstd

    def backward(self, grad, x, bn: _BnRows, i: int, mean, invstd, train: bool):
        if self.group is None:
            k = narrow_batchnorm.fold_factor(x) if train else 1
            if k > 1:
                return narrow_batchnorm.backward(grad, x, bn.weight[i], mean, invstd, bn.eps, k)
            return torch.ops.aten.native_batch_norm_backward(
                grad, x, bn.weight[i], bn.running_mean[i], bn.running_var[i], mean, invstd, train,
                bn.eps, [True, True, True])
        return sync_backward(grad, x, bn.weight[i], mean, invstd, self.counts, self.group)


_nothing = contextlib.nullcontext


def _autocast_on(x: torch.Tensor) -> bool:
    # The meta device (FLOP counting, summaries) has no autocast state to ask about.
    return x.device.type != "meta" and torch.is_autocast_enabled(x.device.type)


def _norms(layer: "GunnLayer") -> list[nn.Module]:
    bns = [bn for u in layer.units for bn in (u.bn1, u.bn2, u.bn3)]
    return bns + ([layer.shortcut[1]] if layer.shortcut is not None else [])


def is_folded(layer: "GunnLayer") -> bool:
    """Whether ``GunnLayer.fold_batch_norms`` folded the layer's batch norms into its
    convolutions (they are then identities and the convolutions carry biases)."""
    return all(isinstance(bn, nn.Identity) for bn in _norms(layer))


def fast_supported(layer: "GunnLayer") -> bool:
    """Whether the layer's batch norms are ones the fast update reproduces exactly."""
    if is_folded(layer):
        return True
    bns = _norms(layer)
    if not all(isinstance(b, nn.BatchNorm2d) and b.bias is not None and b.track_running_stats
               for b in bns):
        return False
    if any(sync_group(b) is not sync_group(bns[0]) for b in bns):  # one _Norm for the layer
        return False
    if layer.shortcut is not None:  # joined with bn1 of the first unit
        a, b = layer.units[0].bn1, layer.shortcut[1]
        return (a.eps, a.momentum) == (b.eps, b.momentum)
    return True


def _layer_params(layer: "GunnLayer") -> list[torch.Tensor]:
    """The parameters in the flat order ``_GradualUpdate.apply`` takes them."""
    return LayerParams.of(layer).flat()


# oneDNN's matrix product, on CPU, in the precisions it offers. On the 2-core CPU of
# benchmarks/RESULTS.md it runs the tall, narrow products of a segment (B*H*W rows, a few
# dozen columns) in about half the time of torch.mm once there are thousands of rows
# (GUNN-15 at batch 16, 32x32: training step 0.71x, inference 0.75x), and adds a bias and
# a ReLU in the same pass; on a few hundred rows its fixed cost per call makes it slower
# (batch 4 at 8x8: 1.8x the training step), so small products stay with torch.mm.
_ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
_ONEDNN_DTYPES = (torch.float32, torch.bfloat16)
_ONEDNN_MIN_ROWS = 4096

if _ONEDNN:
    @register_flop_formula(torch.ops.mkldnn._linear_pointwise)
    def _linear_flops(x_shape, w_shape, *args, **kwargs) -> int:
        return 2 * x_shape[0] * x_shape[1] * w_shape[0]  # as torch.mm's, for the FLOP counts


def _linear(a: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None,
            relu: bool = False) -> torch.Tensor:
    """``a @ w.t()`` (+ ``bias``, then ReLU if asked) for a (rows, in) matrix ``a`` and an
    (out, in) weight ``w``."""
    if (_ONEDNN and a.device.type == "cpu" and a.dtype in _ONEDNN_DTYPES and w.dtype == a.dtype
            and a.shape[0] >= _ONEDNN_MIN_ROWS):
        return torch.ops.mkldnn._linear_pointwise(a, w, bias, "relu" if relu else "none", [], "")
    out = torch.mm(a, w.t()) if bias is None else torch.addmm(bias, a, w.t())
    return out.relu_() if relu else out


def _matrix(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B*H*W, C); a view when ``x`` is channels last."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def _matrix_copy(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).clone(memory_format=torch.contiguous_format).view(-1, x.shape[1])


def _image(m: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """(B*H*W, C) -> a channels-last (B, C, H, W) view."""
    b, _, h, w = shape
    return m.view(b, h, w, m.shape[1]).permute(0, 3, 1, 2)


# --- blocks of segments -----------------------------------------------------------------
#
# Every segment's first convolution reads the whole (B*H*W, N) state. Done segment by
# segment, that is P passes over the state in forward, and in backward P more for the
# weight gradients (dh^T @ state) and P read-and-writes of the state gradient (Eq. 6:
# grad += dh @ W1), each a tall product only a few dozen columns wide. The segments are
# taken in blocks of consecutive ones instead: within a block only the block's own
# columns change, so the product over every other column is one wide product per block
# (forward: before the block; backward: once its dh are known), and each segment adds
# just the part over the block's columns, read from the state as it stands. With blocks
# of L segments a segment reads P/L + L segments' columns instead of P: fewest near
# L = sqrt(P). The sums are the same; only the order of the additions changes.

def _blocks(segments: int, size: int | None = None) -> list[range]:
    """The segments in consecutive blocks of ``size``, by default about sqrt(segments)
    (the last block may be shorter)."""
    size = size or max(1, round(math.sqrt(segments)))
    return [range(a, min(a + size, segments)) for a in range(0, segments, size)]


def _outside(cols: int, lo: int, hi: int) -> list[slice]:
    """The column ranges of a block's complement, [0, lo) and [hi, cols), those not empty."""
    return [s for s in (slice(0, lo), slice(hi, cols)) if s.stop > s.start]


def _outside_product(state: torch.Tensor, w: torch.Tensor, lo: int, hi: int,
                     bias: torch.Tensor | None = None) -> torch.Tensor:
    """``state @ w.t()`` (+ ``bias``) over the columns outside [lo, hi): what a block's
    first products take from the columns the block does not change."""
    out = None
    for cols in _outside(state.shape[1], lo, hi):
        if out is None:
            out = (torch.mm(state[:, cols], w[:, cols].t()) if bias is None
                   else torch.addmm(bias, state[:, cols], w[:, cols].t()))
        else:  # in place through addmm's out=, which FLOP counters see (addmm_ they do not)
            torch.addmm(out, state[:, cols], w[:, cols].t(), out=out)
    if out is None:  # one block holds every segment
        out = state.new_zeros(state.shape[0], w.shape[0])
        if bias is not None:
            out += bias
    return out


# --- forward and backward ---------------------------------------------------------------

def _gradual_fast(layer: "GunnLayer", x: torch.Tensor, params: LayerParams,
                  saved: list[list[UnitSaved]] | None, norm: _Norm) -> torch.Tensor:
    """Eq. 4 in one in-place state buffer; appends each segment's records to ``saved``."""
    o, shape, train = layer.seg_channels, x.shape, layer.units[0].bn1.training
    units = _views(layer, params)
    state = _matrix_copy(x)
    first, n = units[0], state.shape[1]
    for block in _blocks(layer.segments):
        lo, hi, rows = block.start * o, block.stop * o, first.w1.shape[1]
        outside = _outside_product(state, first.w1[block.start:block.stop].reshape(-1, n), lo, hi)
        for k, i in enumerate(block):
            records = _segment_forward(layer, units, state, shape, i,
                                       outside[:, k * rows:(k + 1) * rows], slice(lo, hi), norm,
                                       train)
            if saved is not None:
                saved.append(records)
    if train and layer.shortcut is not None:  # write back the joined running statistics
        w, joined = units[0].width, units[0].bn1
        own_bn, short = layer.units[0].bn1, layer.shortcut[1]
        for both, own, theirs in ((joined.running_mean, own_bn.running_mean, short.running_mean),
                                  (joined.running_var, own_bn.running_var, short.running_var)):
            own.view(layer.segments, w).copy_(both[:, :w])
            theirs.view(layer.segments, o).copy_(both[:, w:])
    y = _image(state, shape)
    return y.contiguous() if x.is_contiguous() else y


def _segment_forward(layer: "GunnLayer", units: list[_UnitView], state: torch.Tensor,
                     shape: torch.Size, i: int, outside: torch.Tensor, block: slice,
                     norm: _Norm, train: bool) -> list[UnitSaved]:
    """Segment ``i`` of Eq. 4, updating ``state`` in place. Its first product is ``outside``
    (over the columns outside its block, computed before the block) plus the product over
    ``block``'s columns of the state as it stands."""
    g, side = state, None  # the first unit reads the whole current state
    records: list[UnitSaved] = []
    for m, u in enumerate(units):
        if m == 0:
            h = torch.addmm(outside, state[:, block], u.w1[i][:, block].t())
        else:
            h = _linear(g, u.w1[i])
        a1, m1, s1 = norm.forward(h, u.bn1, i, train)
        if u.extra:
            r1, side = torch.relu(a1[:, :u.width]), a1[:, u.width:]
        else:
            r1 = a1.relu_()
        c2 = _matrix(F.conv2d(_image(r1, shape), u.w2[i], None, 1, 1))
        a2, m2, s2 = norm.forward(c2, u.bn2, i, train)
        r2 = a2.relu_()
        c3 = _linear(r2, u.w3[i])
        a3, m3, s3 = norm.forward(c3, u.bn3, i, train)
        records.append(UnitSaved(h=h, bn1_mean=m1, bn1_invstd=s1, r1=r1, c2=c2, bn2_mean=m2,
                                 bn2_invstd=s2, r2=r2, c3=c3, bn3_mean=m3, bn3_invstd=s3,
                                 g_in=g if m else None))
        g = a3 if m == 0 else g + a3
    if side is not None:
        g = g + side
    o = layer.seg_channels
    seg = state[:, i * o:(i + 1) * o]
    seg.add_(g) if layer.residual else seg.copy_(g)
    return records


def _unit_backward(u: _UnitView, rec: UnitSaved, gr: UnitParams, i: int, dg: torch.Tensor,
                   d_out: torch.Tensor, shape, norm: _Norm, train: bool) -> torch.Tensor:
    """Back through one unit for segment ``i``: fills row ``i`` of the gradients ``gr`` and
    returns the gradient at the first 1x1 convolution's output (before its BN)."""
    dc3, gr.bn3_weight[i], gr.bn3_bias[i] = norm.backward(dg, rec.c3, u.bn3, i, rec.bn3_mean,
                                                          rec.bn3_invstd, train)
    gr.conv3[i] = torch.mm(dc3.t(), rec.r2)
    da2 = torch.ops.aten.threshold_backward(_linear(dc3, u.w3[i].t()), rec.r2, 0)
    dc2, gr.bn2_weight[i], gr.bn2_bias[i] = norm.backward(da2, rec.c2, u.bn2, i, rec.bn2_mean,
                                                          rec.bn2_invstd, train)
    dr1, gr.conv2[i], _ = torch.ops.aten.convolution_backward(
        _image(dc2, shape), _image(rec.r1, shape), u.w2[i], None, [1, 1], [1, 1], [1, 1],
        False, [0, 0], 1, [True, True, False])
    da1 = torch.ops.aten.threshold_backward(_matrix(dr1), rec.r1, 0)
    if u.extra:  # the projection shortcut's BN output is added to G_i directly
        da1 = torch.cat([da1, d_out], 1)
    dh, gr.bn1_weight[i], gr.bn1_bias[i] = norm.backward(da1, rec.h, u.bn1, i, rec.bn1_mean,
                                                         rec.bn1_invstd, train)
    return dh


class _GradualUpdate(torch.autograd.Function):
    """Algorithm 1 as an autograd function: gradients equal those of ``_gradual_reference``.
    Takes and returns the parameters flat, in :meth:`LayerParams.flat`'s order."""

    @staticmethod
    def forward(ctx, layer: "GunnLayer", x: torch.Tensor, *flat: torch.Tensor) -> torch.Tensor:
        params = LayerParams.from_flat(layer, flat)
        saved: list[list[UnitSaved]] = []
        norm = _Norm(layer)
        y = _gradual_fast(layer, x, params, saved, norm)
        ctx.layer, ctx.norm = layer, norm
        ctx.train = layer.units[0].bn1.training
        ctx.save_for_backward(*_Tape(x, y, params, saved).tensors())
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y: torch.Tensor):
        layer, train, norm = ctx.layer, ctx.train, ctx.norm
        tape = _Tape.from_tensors(layer, ctx.saved_tensors)
        x, shape, o = tape.x, tape.x.shape, layer.seg_channels
        units = _views(layer, tape.params)
        grads = [u.zero_grads() for u in units]
        grad = _matrix_copy(grad_y)   # dL/d(current state), updated in place (Eq. 6)
        state = _matrix_copy(tape.y)  # the state, rebuilt segment by segment
        x_cl, state_cl = x.permute(0, 2, 3, 1), state.view(shape[0], shape[2], shape[3], -1)
        first, n = units[0], state.shape[1]
        for block in reversed(_blocks(layer.segments)):
            inside, rows = slice(block.start * o, block.stop * o), first.w1.shape[1]
            dhs = grad.new_empty(grad.shape[0], len(block) * rows)  # the block's first dh
            for k, i in reversed(list(enumerate(block))):
                lo, hi = i * o, (i + 1) * o
                state_cl[..., lo:hi] = x_cl[..., lo:hi]  # Algorithm 1: y_c <- x_c for c in c_i
                d_out = grad[:, lo:hi].clone()
                if not layer.residual:  # y_i = G_i(state): no identity path back to x_i
                    grad[:, lo:hi].zero_()
                dg = d_out
                for u, rec, gr in reversed(list(zip(units, tape.segments[i], grads))):
                    dh = _unit_backward(u, rec, gr, i, dg, d_out, shape, norm, train)
                    if rec.g_in is None:  # the first unit read the state: the block's columns now
                        dhs[:, k * rows:(k + 1) * rows] = dh
                        gr.conv1[i][:, inside] = torch.mm(dh.t(), state[:, inside])
                        grad[:, inside].addmm_(dh, u.w1[i][:, inside])
                    else:
                        gr.conv1[i] = torch.mm(dh.t(), rec.g_in)
                        dg = dg + _linear(dh, u.w1[i].t())
            # The other columns, which the block left as they were, in one product each way.
            w_block = first.w1[block.start:block.stop].reshape(-1, n)
            gw_block = grads[0].conv1[block.start:block.stop].view(-1, n)
            for cols in _outside(n, inside.start, inside.stop):
                gw_block[:, cols].addmm_(dhs.t(), state[:, cols])
                grad[:, cols].addmm_(dhs, w_block[:, cols])
        unit_grads, shortcut = [], None
        for u, gr, p in zip(units, grads, tape.params.units):
            if u.extra:  # split the shortcut's rows off the joined first unit
                w = u.width
                shortcut = ShortcutParams(gr.conv1[:, w:], gr.bn1_weight[:, w:], gr.bn1_bias[:, w:])
                gr = gr._replace(conv1=gr.conv1[:, :w], bn1_weight=gr.bn1_weight[:, :w],
                                 bn1_bias=gr.bn1_bias[:, :w])
            unit_grads.append(UnitParams(*(g.reshape(t.shape) for g, t in zip(gr, p))))
        if shortcut is not None:
            shortcut = ShortcutParams(*(g.reshape(t.shape)
                                        for g, t in zip(shortcut, tape.params.shortcut)))
        dx = _image(grad, shape)
        return (None, dx.contiguous() if x.is_contiguous() else dx,
                *LayerParams(tuple(unit_grads), shortcut).flat())


# --- inference with the batch norms folded ------------------------------------------------

class FoldedUnit(NamedTuple):
    """One stacked unit's convolutions with the batch norms after them folded in, viewed
    per segment: ``w1[i]`` is segment i's (rows, inputs) matrix, ``b1[i]`` its bias; the
    first unit of a layer with a projection shortcut carries the shortcut's ``extra`` rows
    after its own in ``w1`` and ``b1`` (one matrix product, as in training)."""

    w1: torch.Tensor
    b1: torch.Tensor
    w2: torch.Tensor
    b2: torch.Tensor
    w3: torch.Tensor
    b3: torch.Tensor
    width: int
    extra: int


def conv_bn_folded(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.Module,
                   dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A convolution's weight and bias with the evaluation-mode batch norm ``bn`` after it
    folded in: BN(W*x + b) = (s*W)*x + (s*(b - mean) + beta), s = gamma/sqrt(var + eps),
    computed in ``dtype`` (the weight's by default) and returned in the weight's dtype.
    An ``nn.Identity`` (a batch norm folded already) leaves them as they are."""
    out = weight.dtype
    dtype = dtype or out
    b = bias.to(dtype) if bias is not None else weight.new_zeros(weight.shape[0], dtype=dtype)
    if isinstance(bn, nn.Identity):
        return weight, b.to(out)
    scale = torch.rsqrt(bn.running_var.to(dtype) + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.to(dtype)
    b = (b - bn.running_mean.to(dtype)) * scale
    if bn.bias is not None:
        b = b + bn.bias.to(dtype)
    w = weight.to(dtype) * scale.view(-1, *([1] * (weight.dim() - 1)))
    return w.to(out), b.to(out)


def fold_into_conv(conv: nn.Conv2d, bn: nn.Module) -> None:
    """Fold ``bn`` (evaluation mode) into ``conv``, in place: the convolution then computes
    what the two did (with a bias it gains if it had none). Computed in float64, so that
    the folded weights are rounded once."""
    weight, bias = conv_bn_folded(conv.weight.detach(),
                                  None if conv.bias is None else conv.bias.detach(), bn, torch.float64)
    with torch.no_grad():
        conv.weight.copy_(weight)
        if conv.bias is None:
            conv.bias = nn.Parameter(bias, requires_grad=conv.weight.requires_grad)
        else:
            conv.bias.copy_(bias)


def _folded_units(layer: "GunnLayer", dtype: torch.dtype | None) -> list[FoldedUnit]:
    P, out = layer.segments, []
    for m, u in enumerate(layer.units):
        w, o = u.width, u.out
        w1, b1 = conv_bn_folded(u.conv1.weight, u.conv1.bias, u.bn1)
        w1, b1, extra = w1.reshape(P, w, -1), b1.view(P, w), 0
        if m == 0 and layer.shortcut is not None:
            ws, bs = conv_bn_folded(layer.shortcut[0].weight, layer.shortcut[0].bias,
                                    layer.shortcut[1])
            w1 = torch.cat([w1, ws.reshape(P, o, -1)], 1)
            b1, extra = torch.cat([b1, bs.view(P, o)], 1), o
        w2, b2 = conv_bn_folded(u.conv2.weight, u.conv2.bias, u.bn2)
        w3, b3 = conv_bn_folded(u.conv3.weight, u.conv3.bias, u.bn3)
        parts = (w1, b1, w2.view(P, w, *w2.shape[1:]), b2.view(P, w), w3.reshape(P, o, w),
                 b3.view(P, o))
        if dtype is not None:
            parts = tuple(t.to(dtype) for t in parts)
        out.append(FoldedUnit(*parts, width=w, extra=extra))
    return out


def _gradual_folded(layer: "GunnLayer", x: torch.Tensor, units: list[FoldedUnit]) -> torch.Tensor:
    """Eq. 4 in one in-place state buffer with every batch norm a folded bias: per segment
    three products with their biases and two ReLUs, no normalisation pass over the state."""
    o, shape = layer.seg_channels, x.shape
    state = _matrix_copy(x)
    first, n = units[0], state.shape[1]
    for block in _blocks(layer.segments):
        lo, hi, rows = block.start * o, block.stop * o, first.w1.shape[1]
        part = slice(block.start, block.stop)
        outside = _outside_product(state, first.w1[part].reshape(-1, n), lo, hi,
                                   first.b1[part].reshape(-1))
        for k, i in enumerate(block):
            g, side = state, None
            for m, u in enumerate(units):
                if m == 0:
                    h = torch.addmm(outside[:, k * rows:(k + 1) * rows], state[:, lo:hi],
                                    u.w1[i][:, lo:hi].t())
                else:
                    h = _linear(g, u.w1[i], u.b1[i])
                if u.extra:
                    r1, side = torch.relu(h[:, :u.width]), h[:, u.width:]
                else:
                    r1 = h.relu_()
                r2 = _matrix(F.conv2d(_image(r1, shape), u.w2[i], u.b2[i], 1, 1)).relu_()
                c3 = _linear(r2, u.w3[i], u.b3[i])
                g = c3 if m == 0 else g + c3
            if side is not None:
                g = g + side
            seg = state[:, i * o:(i + 1) * o]
            seg.add_(g) if layer.residual else seg.copy_(g)
    y = _image(state, shape)
    return y.contiguous() if x.is_contiguous() else y


def gradual_update(layer: "GunnLayer", x: torch.Tensor) -> torch.Tensor:
    """The layer's gradual update of ``x`` by Algorithm 1 (batches already counted).

    In evaluation mode without gradients, and always for a layer whose batch norms were
    folded (``is_folded``), every batch norm is a per-channel scale and shift: it goes into
    the convolution before it (``_gradual_folded``), which removes three passes over each
    segment's activations."""
    grad = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in layer.parameters()))
    if is_folded(layer) or not (grad or layer.units[0].bn1.training):
        low = torch.get_autocast_dtype(x.device.type) if _autocast_on(x) else None
        units = _folded_units(layer, low)
        with torch.autocast(x.device.type, enabled=False) if low is not None else _nothing():
            return _gradual_folded(layer, x.to(low) if low is not None else x, units)
    params = LayerParams.of(layer)
    if _autocast_on(x):
        # Mixed precision as autocast would do it: convolutions (here matrix products)
        # in the low precision, batch norm with float32 parameters and statistics. The
        # casts happen out here, so autograd returns float32 gradients to the weights,
        # and the hand-written backward never depends on autocast's state.
        low = torch.get_autocast_dtype(x.device.type)
        params = params.cast(low)
        x = x.to(low)
    flat = params.flat()
    with torch.autocast(x.device.type, enabled=False) if x.device.type != "meta" else _nothing():
        if grad:
            return _GradualUpdate.apply(layer, x, *flat)
        with torch.no_grad():
            return _gradual_fast(layer, x, params, None, _Norm(layer))
