"""Gradually Updated Neural Networks (GUNN) and their simultaneous baselines (SUNN).

Qiao, Zhang, Shen, Wang, Yuille, "Gradually Updated Neural Networks for Large-Scale
Image Recognition", ICML 2018.

A GUNN layer splits its N channels into P segments of o = N/P channels and updates
them one after another (Eq. 4): segment i is computed from the current state, in
which segments < i already hold their updated values and segments >= i their
inputs. A SUNN layer has exactly the same parameters but updates every segment from
the layer's input at once. One flag, ``gradual``, switches a layer between the two,
so the same weights can be evaluated either way.

The parameters of all P update units are stored stacked, as the convolutions of the
simultaneous layer (a dense first 1x1 convolution, grouped ones after it): SUNN runs
them as they are, GUNN runs row slices of them segment by segment.

Where the paper is silent, two sources decide. The authors' released Torch code
(github.com/joe-siyuan-qiao/GUNN: models/GunnLayer.lua, gunn-15.lua, gunn-18.lua)
builds GUNN-15 and GUNN-18 only, and gives:

- each segment's unit: 1x1 conv N -> 2o, BN, ReLU, 3x3 conv 2o -> 2o, BN, ReLU,
  1x1 conv 2o -> o, BN (K = 2, M = 1), and y_i = x_i + G_i (always residual);
- on CIFAR, a projection shortcut *per segment*, 1x1 conv N -> o + BN, added to G_i;
  none on ImageNet (the layer branches on the dataset name; here ``projection``);
- CIFAR: 3x3 conv stem, average pooling between a transition and its GUNN layer, a
  1x1 conv + BN + ReLU head before global pooling; ImageNet: 7x7/2 conv and 3x3/2 max
  pool stem, average pooling after every GUNN layer but the last;
- initialisation "following ResNet": every convolution N(0, 2/(k*k*out)) with ``out``
  that convolution's own output channels, i.e. those of one segment's module (2o, 2o
  and o in a unit; o in the shortcut), BN weight 1 and bias 0, linear bias 0, no conv
  biases. The stacked convolutions here are ``StackedConv2d`` so that they initialise
  per segment in the same way (a std sqrt(P) larger than the stacked shape would give);
  the SUNN twins share the modules, hence the initialisation. Before any training, in
  eval mode (BN the identity), a GUNN's activations then grow with every segment it
  updates; training-mode batch statistics keep them to scale.

The code has no GUNN-24, Wide GUNN-18, GUNN-15-NoRes or SUNN. Their decisions are
inferred from the paper: GUNN-24's second unit per segment (M = 2) maps o -> o with an
identity shortcut around it, and Wide GUNN-18 takes GUNN-18's ImageNet layout, both
because the parameter counts then equal the paper's to the unit (Section 5);
GUNN-15-NoRes drops only x_i of Eq. 5 and keeps the projection, as Table 5 lists it
with GUNN-15's 1.6M parameters (without the projections it would have 1.3M); SUNN
updates all segments from the same input (Section 5.1, Table 5).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .batchnorm import batch_norm_rows, running_factor, sync_backward, sync_forward, sync_group
from .layers import ConvBNAct, ConvNet, StackedConv2d, init_he_fan_out
from .registry import register_model

__all__ = ["GunnLayer", "GunnNet", "reference_evaluation"]


# --- helpers ---------------------------------------------------------------------------

def _conv_rows(conv: nn.Conv2d, x: torch.Tensor, rows: slice) -> torch.Tensor:
    """Output channels ``rows`` of ``conv``, for the input that those rows read.

    For a grouped convolution whose groups are the segments, ``x`` is the segment's
    own input (one group); for a dense one it is the whole input.
    """
    return F.conv2d(x, conv.weight[rows], None, conv.stride, conv.padding)


# --- blocks ----------------------------------------------------------------------------

class BottleneckUnits(nn.Module):
    """One bottleneck update unit (the paper's Figure 4) for each of P segments.

    1x1 conv to K*o, BN, ReLU; 3x3 conv to K*o, BN, ReLU; 1x1 conv to o, BN. The first
    convolution reads ``in_channels`` shared by all segments (the whole state) when
    ``dense``; otherwise each segment reads only its own o channels (a stacked unit).
    Each convolution holds P stacks, one per segment (see ``StackedConv2d``).
    """

    def __init__(self, in_channels: int, out_per_segment: int, segments: int, expansion: int,
                 dense: bool) -> None:
        super().__init__()
        width = expansion * out_per_segment
        self.segments, self.width, self.out = segments, width, out_per_segment
        self.conv1 = StackedConv2d(in_channels, segments * width, 1, stacks=segments,
                                   groups=1 if dense else segments)
        self.bn1 = nn.BatchNorm2d(segments * width)
        self.conv2 = StackedConv2d(segments * width, segments * width, 3, stacks=segments,
                                   padding=1, groups=segments)
        self.bn2 = nn.BatchNorm2d(segments * width)
        self.conv3 = StackedConv2d(segments * width, segments * out_per_segment, 1,
                                   stacks=segments, groups=segments)
        self.bn3 = nn.BatchNorm2d(segments * out_per_segment)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """All segments at once (simultaneous update)."""
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.bn3(self.conv3(x))

    def segment(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Segment ``i`` alone: the same arithmetic on row slices of the stacked weights."""
        wide = slice(i * self.width, (i + 1) * self.width)
        out = slice(i * self.out, (i + 1) * self.out)
        x = F.relu(batch_norm_rows(self.bn1, _conv_rows(self.conv1, x, wide), wide))
        x = F.relu(batch_norm_rows(self.bn2, _conv_rows(self.conv2, x, wide), wide))
        return batch_norm_rows(self.bn3, _conv_rows(self.conv3, x, out), out)


# --- the gradual update at the simultaneous price (Section 3.4, Algorithm 1) ----------
#
# Written out naively, Eq. 4 makes autograd keep one full copy of the N-channel state per
# segment (every segment's first convolution saves the state it read). Algorithm 1 avoids
# that: the forward pass updates one state buffer in place, and the backward pass walks
# the segments in reverse, rebuilding each segment's input state from the layer's output
# by writing the original segment back (``y_c <- x_c`` for c in c_i). What is kept for
# backward is then the input, the output and each unit's inner activations, which sum
# over the segments to exactly what the simultaneous layer keeps.
#
# The state is held as one (B*H*W, N) matrix (channels last), so that a segment is a block
# of columns and every 1x1 convolution is a single matrix product. A segment's first
# convolution and its projection shortcut read the same state, so they are one product,
# and their batch norms one call over the joined channels (batch norm is per channel).

class _Unit:
    """One stacked unit's weights viewed per segment: index [i] gives segment i's rows."""

    def __init__(self, mod: BottleneckUnits, params: list[torch.Tensor], segments: int,
                 shortcut: tuple[nn.BatchNorm2d, list[torch.Tensor]] | None) -> None:
        P, w, o = segments, mod.width, mod.out
        w1, b1w, b1b, w2, b2w, b2b, w3, b3w, b3b = params
        self.width, self.extra = w, 0
        self.w1 = w1.reshape(P, w, -1)
        self.bn1 = (b1w.view(P, w), b1b.view(P, w), mod.bn1.running_mean.view(P, w),
                    mod.bn1.running_var.view(P, w))
        if shortcut is not None:  # join the projection (rows of the shortcut conv + BN)
            bn, (sw, sbw, sbb) = shortcut
            self.extra = o
            self.w1 = torch.cat([self.w1, sw.reshape(P, o, -1)], 1)
            self.bn1 = tuple(torch.cat([a, b.view(P, o)], 1) for a, b in
                             zip(self.bn1, (sbw, sbb, bn.running_mean, bn.running_var)))
        self.w2 = w2.view(P, w, w, *w2.shape[2:])
        self.bn2 = (b2w.view(P, w), b2b.view(P, w), mod.bn2.running_mean.view(P, w),
                    mod.bn2.running_var.view(P, w))
        self.w3 = w3.reshape(P, o, w)
        self.bn3 = (b3w.view(P, o), b3b.view(P, o), mod.bn3.running_mean.view(P, o),
                    mod.bn3.running_var.view(P, o))
        self.hyper = [(running_factor(b), b.eps) for b in (mod.bn1, mod.bn2, mod.bn3)]


class _Norm:
    """Batch norm in the fast update: the native kernels, or, when the layer's batch norms are
    synchronised over processes (see ``batchnorm.py``), the same computation with the forward
    statistics and the two backward sums all-reduced for each batch norm of each segment, in
    the same order on every process. Every batch norm of a layer normalises the same B*H*W
    rows per process, so one set of counts serves them all."""

    def __init__(self, layer: "GunnLayer") -> None:
        self.group, self.counts = sync_group(layer.units[0].bn1), None

    def forward(self, x, bn, i, train, factor, eps):
        weight, bias, running_mean, running_var = (t[i] for t in bn)
        if self.group is None:
            return torch.native_batch_norm(x, weight, bias, running_mean, running_var, train,
                                           factor, eps)
        y, mean, invstd, self.counts = sync_forward(x, weight, bias, running_mean, running_var,
                                                    factor, eps, self.group)
        return y, mean, invstd

    def backward(self, grad, x, bn, i, mean, invstd, train, eps):
        if self.group is None:
            return torch.ops.aten.native_batch_norm_backward(
                grad, x, bn[0][i], bn[2][i], bn[3][i], mean, invstd, train, eps, [True, True, True])
        return sync_backward(grad, x, bn[0][i], mean, invstd, self.counts, self.group)


_nothing = contextlib.nullcontext


def _autocast_on(x: torch.Tensor) -> bool:
    # The meta device (FLOP counting, summaries) has no autocast state to ask about.
    return x.device.type != "meta" and torch.is_autocast_enabled(x.device.type)


def _fast_supported(layer: "GunnLayer") -> bool:
    bns = [bn for u in layer.units for bn in (u.bn1, u.bn2, u.bn3)]
    if layer.shortcut is not None:
        bns.append(layer.shortcut[1])
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
    """The parameters in the order the fast update takes (and returns gradients for) them."""
    out = []
    for u in layer.units:
        out += [u.conv1.weight, u.bn1.weight, u.bn1.bias, u.conv2.weight, u.bn2.weight,
                u.bn2.bias, u.conv3.weight, u.bn3.weight, u.bn3.bias]
    if layer.shortcut is not None:
        out += [layer.shortcut[0].weight, layer.shortcut[1].weight, layer.shortcut[1].bias]
    return out


def _stack(layer: "GunnLayer", params: list[torch.Tensor]) -> list[_Unit]:
    shortcut = None
    if layer.shortcut is not None:
        shortcut = (layer.shortcut[1], list(params[-3:]))
    return [_Unit(mod, list(params[9 * m:9 * m + 9]), layer.segments, shortcut if m == 0 else None)
            for m, mod in enumerate(layer.units)]


def _matrix(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B*H*W, C); a view when ``x`` is channels last."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def _matrix_copy(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).clone(memory_format=torch.contiguous_format).view(-1, x.shape[1])


def _image(m: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """(B*H*W, C) -> a channels-last (B, C, H, W) view."""
    b, _, h, w = shape
    return m.view(b, h, w, m.shape[1]).permute(0, 3, 1, 2)


def _gradual_fast(layer: "GunnLayer", x: torch.Tensor, params: list[torch.Tensor],
                  saved: list[torch.Tensor] | None, norm: _Norm) -> torch.Tensor:
    """Eq. 4 in one in-place state buffer; appends what the backward pass needs to ``saved``."""
    o, shape, train = layer.seg_channels, x.shape, layer.units[0].bn1.training
    units = _stack(layer, params)
    state = _matrix_copy(x)
    for i in range(layer.segments):
        g, side = state, None  # the first unit reads the whole current state
        for m, u in enumerate(units):
            (f1, e1), (f2, e2), (f3, e3) = u.hyper
            h = torch.mm(g, u.w1[i].t())
            a1, m1, s1 = norm.forward(h, u.bn1, i, train, f1, e1)
            if u.extra:
                r1, side = torch.relu(a1[:, :u.width]), a1[:, u.width:]
            else:
                r1 = a1.relu_()
            c2 = _matrix(F.conv2d(_image(r1, shape), u.w2[i], None, 1, 1))
            a2, m2, s2 = norm.forward(c2, u.bn2, i, train, f2, e2)
            r2 = a2.relu_()
            c3 = torch.mm(r2, u.w3[i].t())
            a3, m3, s3 = norm.forward(c3, u.bn3, i, train, f3, e3)
            if saved is not None:
                saved += [h, m1, s1, r1, c2, m2, s2, r2, c3, m3, s3] + ([g] if m else [])
            g = a3 if m == 0 else g + a3
        if side is not None:
            g = g + side
        seg = state[:, i * o:(i + 1) * o]
        seg.add_(g) if layer.residual else seg.copy_(g)
    if train and layer.shortcut is not None:  # write back the joined running statistics
        w, bn = units[0].width, layer.shortcut[1]
        for joined, first, short in zip(units[0].bn1[2:],
                                        (layer.units[0].bn1.running_mean, layer.units[0].bn1.running_var),
                                        (bn.running_mean, bn.running_var)):
            first.view(layer.segments, w).copy_(joined[:, :w])
            short.view(layer.segments, o).copy_(joined[:, w:])
    y = _image(state, shape)
    return y.contiguous() if x.is_contiguous() else y


class _GradualUpdate(torch.autograd.Function):
    """Algorithm 1 as an autograd function: gradients equal those of ``_gradual_reference``."""

    @staticmethod
    def forward(ctx, layer: "GunnLayer", x: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        saved: list[torch.Tensor] = []
        norm = _Norm(layer)
        y = _gradual_fast(layer, x, list(params), saved, norm)
        ctx.layer, ctx.n_params, ctx.norm = layer, len(params), norm
        ctx.train = layer.units[0].bn1.training
        ctx.save_for_backward(x, y, *params, *saved)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y: torch.Tensor):
        layer, train, norm = ctx.layer, ctx.train, ctx.norm
        x, y, *rest = ctx.saved_tensors
        params, saved = rest[:ctx.n_params], rest[ctx.n_params:]
        units = _stack(layer, params)
        P, o, shape = layer.segments, layer.seg_channels, x.shape
        # Gradients per unit and segment, in the stacked (P, ...) layout of _Unit.
        grads = [[torch.zeros_like(u.w1), torch.zeros_like(u.bn1[0]), torch.zeros_like(u.bn1[0]),
                  torch.zeros_like(u.w2), torch.zeros_like(u.bn2[0]), torch.zeros_like(u.bn2[0]),
                  torch.zeros_like(u.w3), torch.zeros_like(u.bn3[0]), torch.zeros_like(u.bn3[0])]
                 for u in units]
        grad = _matrix_copy(grad_y)   # dL/d(current state), updated in place (Eq. 6)
        state = _matrix_copy(y)       # the state, rebuilt segment by segment
        x_cl, state_cl = x.permute(0, 2, 3, 1), state.view(shape[0], shape[2], shape[3], -1)
        per_segment = 11 * len(units) + (len(units) - 1)
        for i in reversed(range(P)):
            lo, hi = i * o, (i + 1) * o
            state_cl[..., lo:hi] = x_cl[..., lo:hi]  # Algorithm 1: y_c <- x_c for c in c_i
            d_out = grad[:, lo:hi].clone()
            if not layer.residual:  # y_i = G_i(state): no identity path back to x_i
                grad[:, lo:hi].zero_()
            rec = saved[i * per_segment:(i + 1) * per_segment]
            dg = d_out
            for m in reversed(range(len(units))):
                u, gr = units[m], grads[m]
                (_, e1), (_, e2), (_, e3) = u.hyper
                start = 0 if m == 0 else 11 + 12 * (m - 1)
                h, m1, s1, r1, c2, m2, s2, r2, c3, m3, s3 = rec[start:start + 11]
                dc3, gr[7][i], gr[8][i] = norm.backward(dg, c3, u.bn3, i, m3, s3, train, e3)
                gr[6][i] = torch.mm(dc3.t(), r2)
                da2 = torch.ops.aten.threshold_backward(torch.mm(dc3, u.w3[i]), r2, 0)
                dc2, gr[4][i], gr[5][i] = norm.backward(da2, c2, u.bn2, i, m2, s2, train, e2)
                dr1, gr[3][i], _ = torch.ops.aten.convolution_backward(
                    _image(dc2, shape), _image(r1, shape), u.w2[i], None, [1, 1], [1, 1], [1, 1],
                    False, [0, 0], 1, [True, True, False])
                da1 = torch.ops.aten.threshold_backward(_matrix(dr1), r1, 0)
                if u.extra:  # the projection shortcut's BN output is added to G_i directly
                    da1 = torch.cat([da1, d_out], 1)
                dh, gr[1][i], gr[2][i] = norm.backward(da1, h, u.bn1, i, m1, s1, train, e1)
                if m == 0:
                    gr[0][i] = torch.mm(dh.t(), state)
                    grad.addmm_(dh, u.w1[i])
                else:
                    g_in = rec[start + 11]
                    gr[0][i] = torch.mm(dh.t(), g_in)
                    dg = dg + torch.mm(dh, u.w1[i])
        out: list[torch.Tensor] = []
        shortcut: list[torch.Tensor] = []
        for m, (u, gr) in enumerate(zip(units, grads)):
            w = u.width
            if u.extra:
                shortcut = [gr[0][:, w:], gr[1][:, w:], gr[2][:, w:]]
                gr[0], gr[1], gr[2] = gr[0][:, :w], gr[1][:, :w], gr[2][:, :w]
            out += [g.reshape(p.shape) for g, p in zip(gr, params[9 * m:9 * m + 9])]
        out += [g.reshape(p.shape) for g, p in zip(shortcut, params[9 * len(units):])]
        dx = _image(grad, shape)
        return (None, dx.contiguous() if x.is_contiguous() else dx, *out)


class GunnLayer(nn.Module):
    """A GUNN (``gradual=True``) or SUNN (``gradual=False``) layer with hyper-parameters
    {N=channels, P=segments, K=expansion, M=units} (Section 5).

    Segment i's update is ``y_i = x_i + G_i(state)`` (Eq. 5; without ``+ x_i`` when
    ``residual=False``, the GUNN-15-NoRes ablation of Table 5). G_i is M stacked
    bottleneck units: the first maps the N-channel state to o channels, each further
    one maps o to o with an identity shortcut around it. With ``projection`` (the CIFAR
    models) G_i also adds a 1x1 conv N -> o + BN projection of the whole state, one per
    segment as in the authors' code (stacked here into one N -> N convolution); the
    ImageNet models have none.

    ``fast`` (default True) runs the gradual update as Algorithm 1 with its hand-written
    backward pass; False runs Eq. 4 written out, every operation recorded by autograd
    (P copies of the state). Methods that change how gradients pass through ReLUs (the
    deconvnet, guided backpropagation) need the latter: they cannot reach inside a
    hand-written backward pass.
    """

    def __init__(self, channels: int, segments: int, *, expansion: int = 2, units: int = 1,
                 projection: bool = True, residual: bool = True, gradual: bool = True) -> None:
        super().__init__()
        if channels % segments:
            raise ConfigError(f"{channels} channels do not split into {segments} equal segments")
        if units < 1:
            raise ConfigError("a GUNN layer needs at least one update unit")
        self.channels, self.segments = channels, segments
        self.seg_channels = channels // segments
        self.residual, self.gradual, self.fast = residual, gradual, True
        o = self.seg_channels
        self.units = nn.ModuleList(
            BottleneckUnits(channels if m == 0 else segments * o, o, segments, expansion, dense=m == 0)
            for m in range(units)
        )
        self.shortcut = None
        if projection:  # the keys of ConvBNAct(act=False): shortcut.0 conv, shortcut.1 BN
            self.shortcut = nn.Sequential(StackedConv2d(channels, channels, 1, stacks=segments),
                                          nn.BatchNorm2d(channels))

    def extra_repr(self) -> str:
        return (f"N={self.channels}, P={self.segments}, gradual={self.gradual}, "
                f"residual={self.residual}")

    # The learned part G of every segment at once, all reading the same input.
    def update(self, x: torch.Tensor) -> torch.Tensor:
        g = self.units[0](x)
        for unit in self.units[1:]:
            g = g + unit(g)
        if self.shortcut is not None:
            g = g + self.shortcut(x)
        return g

    # The learned part G_i of segment i, reading the current state.
    def update_segment(self, i: int, state: torch.Tensor) -> torch.Tensor:
        g = self.units[0].segment(i, state)
        for unit in self.units[1:]:
            g = g + unit.segment(i, g)
        if self.shortcut is not None:
            rows = slice(i * self.seg_channels, (i + 1) * self.seg_channels)
            conv, bn = self.shortcut[0], self.shortcut[1]
            g = g + batch_norm_rows(bn, _conv_rows(conv, state, rows), rows)
        return g

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.gradual:
            g = self.update(x)
            return x + g if self.residual else g
        if x.dim() != 4 or not self.fast or not _fast_supported(self):
            return self._gradual_reference(x)
        self._count_batch()
        params = _layer_params(self)
        if _autocast_on(x):
            # Mixed precision as autocast would do it: convolutions (here matrix products)
            # in the low precision, batch norm with float32 parameters and statistics. The
            # casts happen out here, so autograd returns float32 gradients to the weights,
            # and the hand-written backward never depends on autocast's state.
            low = torch.get_autocast_dtype(x.device.type)
            params = [p.to(low) if p.dim() > 1 else p for p in params]
            x = x.to(low)
        with torch.autocast(x.device.type, enabled=False) if x.device.type != "meta" else _nothing():
            if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
                return _GradualUpdate.apply(self, x, *params)
            with torch.no_grad():
                return _gradual_fast(self, x, params, None, _Norm(self))

    def _count_batch(self) -> None:
        # The per-segment updates run on slices of the stacked BN layers, which therefore do
        # not count batches themselves; count once per forward pass, as the modules would.
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d) and m.training and m.track_running_stats:
                m.num_batches_tracked.add_(1)

    def _gradual_reference(self, x: torch.Tensor) -> torch.Tensor:
        # Eq. 4 written out: one new state tensor per segment. Autograd keeps every one of
        # them (P copies of the state), which is what the fast path avoids.
        self._count_batch()
        o, state = self.seg_channels, x
        for i in range(self.segments):
            lo, hi = i * o, (i + 1) * o
            g = self.update_segment(i, state)
            new = state[:, lo:hi] + g if self.residual else g
            state = torch.cat([state[:, :lo], new, state[:, hi:]], dim=1)
        return state


@contextlib.contextmanager
def reference_evaluation(model: nn.Module):
    """Every GunnLayer in ``model`` evaluates through its straightforward per-segment code
    (plain autograd operations, traceable and hookable) while the block runs, and goes back
    to what it was afterwards: the same weights and the same outputs, without the fused
    Algorithm 1 path. ONNX export traces through it; gradient visualisations hook it."""
    layers = [m for m in model.modules() if isinstance(m, GunnLayer)]
    saved = [m.fast for m in layers]
    for m in layers:
        m.fast = False
    try:
        yield
    finally:
        for m, fast in zip(layers, saved):
            m.fast = fast


# --- model -----------------------------------------------------------------------------

class GunnNet(ConvNet):
    """The GUNN/SUNN networks: a stem, then per resolution a transition (1x1 conv + BN +
    ReLU, Section 5 "one resolution, one representation") and one GUNN layer.

    ``stages`` lists (N, P) per resolution. CIFAR models (``imagenet=False``) pool
    between a transition and its GUNN layer and end with a 1x1 conv to ``head_channels``;
    ImageNet models pool after each GUNN layer but the last (the authors' code). All
    convolutions start from He's fan-out initialisation of the authors' per-segment
    modules (module docstring).
    """

    classifier_path = "fc"

    def __init__(self, *, stages: list[tuple[int, int]], imagenet: bool, stem_channels: int = 64,
                 head_channels: int | None = None, expansion: int = 2, units: int = 1,
                 residual: bool = True, gradual: bool = True, num_classes: int = 10) -> None:
        super().__init__()
        if imagenet:  # Table 2, Conv1: 7x7/2 conv, 3x3/2 max pool
            self.stem = nn.Sequential(ConvBNAct(3, stem_channels, 7, stride=2),
                                      nn.MaxPool2d(3, 2, padding=1))
        else:  # Table 1, Conv1: 3x3 conv
            self.stem = ConvBNAct(3, stem_channels, 3)
        blocks: list[nn.Module] = []
        prev = stem_channels
        for s, (channels, segments) in enumerate(stages):
            blocks.append(ConvBNAct(prev, channels, 1))
            if s > 0 and not imagenet:
                blocks.append(nn.AvgPool2d(2))
            blocks.append(GunnLayer(channels, segments, expansion=expansion, units=units,
                                    projection=not imagenet, residual=residual, gradual=gradual))
            if imagenet and s < len(stages) - 1:
                blocks.append(nn.AvgPool2d(2))
            prev = channels
        if head_channels is not None:
            blocks.append(ConvBNAct(prev, head_channels, 1))
            prev = head_channels
        self.features = nn.Sequential(*blocks)
        self.fc = nn.Linear(prev, num_classes)
        init_he_fan_out(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.stem(x))

    def gunn_layers(self) -> list[GunnLayer]:
        return [m for m in self.modules() if isinstance(m, GunnLayer)]

    def set_gradual(self, gradual: bool) -> "GunnNet":
        """Evaluate the same weights as GUNN (True) or as SUNN (False)."""
        for layer in self.gunn_layers():
            layer.gradual = gradual
        return self


# --- builders --------------------------------------------------------------------------

_PAPER = "Qiao et al., Gradually Updated Neural Networks for Large-Scale Image Recognition"
_CIFAR = dict(family="gunn", paper=_PAPER, year=2018, input_size=(3, 32, 32), num_classes=10,
              dataset="cifar10")
_IMAGENET = dict(family="gunn", paper=_PAPER, year=2018, input_size=(3, 224, 224),
                 num_classes=1000, dataset="imagenet")

_GUNN15 = dict(stages=[(240, 20), (300, 25), (360, 30)], head_channels=360, imagenet=False)
_GUNN24 = dict(stages=[(720, 20), (900, 25), (1080, 30)], head_channels=1080, imagenet=False,
               expansion=3, units=2)
_GUNN18 = dict(stages=[(400, 10), (800, 20), (1600, 40), (2000, 50)], imagenet=True)
_WIDE18 = dict(stages=[(1200, 30), (1600, 40), (2000, 50), (2000, 50)], imagenet=True)


@register_model(**_CIFAR, top1_err=4.15, params=1_585_746,
                notes="Tables 1, 3; C100 error 20.45 with 1,618,236 parameters")
def gunn15(*, num_classes: int = 10, gradual: bool = True) -> GunnNet:
    return GunnNet(**_GUNN15, gradual=gradual, num_classes=num_classes)


@register_model(**_CIFAR, top1_err=5.64, params=1_585_746, notes="Table 5; C100 error 23.75")
def sunn15(*, num_classes: int = 10) -> GunnNet:
    return GunnNet(**_GUNN15, gradual=False, num_classes=num_classes)


@register_model(**_CIFAR, top1_err=4.45, params=1_585_746,
                notes="Table 5, GUNN-15 without the identity term of Eq. 5; C100 error 21.15")
def gunn15_nores(*, num_classes: int = 10) -> GunnNet:
    return GunnNet(**_GUNN15, residual=False, num_classes=num_classes)


@register_model(**_CIFAR, top1_err=3.21, params=29_534_106,
                notes="Tables 3, 5; C100 error 16.69 with 29,631,396 parameters")
def gunn24(*, num_classes: int = 10, gradual: bool = True) -> GunnNet:
    return GunnNet(**_GUNN24, gradual=gradual, num_classes=num_classes)


@register_model(**_CIFAR, top1_err=3.88, params=29_534_106, notes="Table 5; C100 error 19.60")
def sunn24(*, num_classes: int = 10) -> GunnNet:
    return GunnNet(**_GUNN24, gradual=False, num_classes=num_classes)


@register_model(**_IMAGENET, top1_err=21.65, top5_err=5.87, params=28_909_736, notes="Tables 2, 4")
def gunn18(*, num_classes: int = 1000, gradual: bool = True) -> GunnNet:
    return GunnNet(**_GUNN18, gradual=gradual, num_classes=num_classes)


@register_model(**_IMAGENET, top1_err=26.16, top5_err=8.48, params=28_909_736, notes="Table 4")
def sunn18(*, num_classes: int = 1000) -> GunnNet:
    return GunnNet(**_GUNN18, gradual=False, num_classes=num_classes)


@register_model(**_IMAGENET, top1_err=20.59, top5_err=5.52, params=45_624_936, notes="Table 4")
def wide_gunn18(*, num_classes: int = 1000, gradual: bool = True) -> GunnNet:
    return GunnNet(**_WIDE18, gradual=gradual, num_classes=num_classes)


@register_model(**_IMAGENET, params=45_624_936, notes="SUNN twin of Wide GUNN-18 (not in the paper)")
def wide_sunn18(*, num_classes: int = 1000) -> GunnNet:
    return GunnNet(**_WIDE18, gradual=False, num_classes=num_classes)
