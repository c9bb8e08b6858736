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
from .batchnorm import batch_norm_rows
from .gunn_fast import _GradualUpdate, _layer_params, gradual_update  # noqa: F401
from .gunn_fast import fold_into_conv
from .gunn_fast import fast_supported as _fast_supported
from .layers import ConvBNAct, ConvNet, StackedConv2d, init_he_fan_out
from .registry import CIFAR10, IMAGENET, register_model

__all__ = ["GunnLayer", "GunnNet", "reference_evaluation"]


# --- helpers ---------------------------------------------------------------------------

def _conv_rows(conv: nn.Conv2d, x: torch.Tensor, rows: slice) -> torch.Tensor:
    """Output channels ``rows`` of ``conv``, for the input that those rows read.

    For a grouped convolution whose groups are the segments, ``x`` is the segment's
    own input (one group); for a dense one it is the whole input.
    """
    bias = conv.bias[rows] if conv.bias is not None else None
    return F.conv2d(x, conv.weight[rows], bias, conv.stride, conv.padding)


def _norm_rows(bn: nn.Module, x: torch.Tensor, rows: slice) -> torch.Tensor:
    # A batch norm folded into its convolution (GunnLayer.fold_batch_norms) is an identity.
    return x if isinstance(bn, nn.Identity) else batch_norm_rows(bn, x, rows)


def _fold_into(conv: nn.Conv2d, parent: nn.Module, name: str) -> int:
    bn = parent._modules[name]
    if isinstance(bn, nn.Identity):
        return 0
    fold_into_conv(conv, bn)
    parent._modules[name] = nn.Identity()
    return 1


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
        x = F.relu(_norm_rows(self.bn1, _conv_rows(self.conv1, x, wide), wide))
        x = F.relu(_norm_rows(self.bn2, _conv_rows(self.conv2, x, wide), wide))
        return _norm_rows(self.bn3, _conv_rows(self.conv3, x, out), out)

    def fold_batch_norms(self) -> int:
        """Fold each evaluation-mode batch norm into the stacked convolution before it (the
        convolution gains a bias, the batch norm becomes an identity); returns how many."""
        pairs = [(self.conv1, "bn1"), (self.conv2, "bn2"), (self.conv3, "bn3")]
        return sum(_fold_into(conv, self, name) for conv, name in pairs)


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
    backward pass (in ``gunn_fast.py``); False runs Eq. 4 written out, every operation
    recorded by autograd (P copies of the state). Methods that change how gradients pass
    through ReLUs (the deconvnet, guided backpropagation) need the latter: they cannot
    reach inside a hand-written backward pass.
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
            g = g + _norm_rows(bn, _conv_rows(conv, state, rows), rows)
        return g

    def fold_batch_norms(self) -> int:
        """Fold every batch norm of the layer into the convolution it follows, for inference
        (``convnets.optimize``): the same outputs in evaluation mode, in either update order,
        since each BN channel belongs to exactly one convolution output channel. Returns how
        many batch norms were folded. The layer is then for inference only."""
        folded = sum(unit.fold_batch_norms() for unit in self.units)
        if self.shortcut is not None:
            folded += _fold_into(self.shortcut[0], self.shortcut, "1")
        return folded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.gradual:
            g = self.update(x)
            return x + g if self.residual else g
        if x.dim() != 4 or not self.fast or not _fast_supported(self):
            return self._gradual_reference(x)
        self._count_batch()
        return gradual_update(self, x)

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

_GUNN15 = dict(stages=[(240, 20), (300, 25), (360, 30)], head_channels=360, imagenet=False)
_GUNN24 = dict(stages=[(720, 20), (900, 25), (1080, 30)], head_channels=1080, imagenet=False,
               expansion=3, units=2)
_GUNN18 = dict(stages=[(400, 10), (800, 20), (1600, 40), (2000, 50)], imagenet=True)
_WIDE18 = dict(stages=[(1200, 30), (1600, 40), (2000, 50), (2000, 50)], imagenet=True)


@register_model(family="gunn", paper=_PAPER, year=2018, data=CIFAR10, top1_err=4.15,
                params=1_585_746, twin="sunn15", figures="Tables 1, 3",
                notes="C100 error 20.45 with 1,618,236 parameters")
def gunn15(*, num_classes: int = 10, gradual: bool = True) -> GunnNet:
    return GunnNet(**_GUNN15, gradual=gradual, num_classes=num_classes)


@register_model(family="gunn", paper=_PAPER, year=2018, data=CIFAR10, top1_err=5.64,
                params=1_585_746, figures="Table 5", notes="C100 error 23.75")
def sunn15(*, num_classes: int = 10) -> GunnNet:
    return GunnNet(**_GUNN15, gradual=False, num_classes=num_classes)


@register_model(family="gunn", paper=_PAPER, year=2018, data=CIFAR10, top1_err=4.45,
                params=1_585_746, figures="Table 5",
                notes="GUNN-15 without the identity term of Eq. 5; C100 error 21.15")
def gunn15_nores(*, num_classes: int = 10) -> GunnNet:
    return GunnNet(**_GUNN15, residual=False, num_classes=num_classes)


@register_model(family="gunn", paper=_PAPER, year=2018, data=CIFAR10, top1_err=3.21,
                params=29_534_106, twin="sunn24", figures="Tables 3, 5",
                notes="C100 error 16.69 with 29,631,396 parameters")
def gunn24(*, num_classes: int = 10, gradual: bool = True) -> GunnNet:
    return GunnNet(**_GUNN24, gradual=gradual, num_classes=num_classes)


@register_model(family="gunn", paper=_PAPER, year=2018, data=CIFAR10, top1_err=3.88,
                params=29_534_106, figures="Table 5", notes="C100 error 19.60")
def sunn24(*, num_classes: int = 10) -> GunnNet:
    return GunnNet(**_GUNN24, gradual=False, num_classes=num_classes)


@register_model(family="gunn", paper=_PAPER, year=2018, data=IMAGENET, top1_err=21.65,
                top5_err=5.87, params=28_909_736, twin="sunn18", figures="Tables 2, 4")
def gunn18(*, num_classes: int = 1000, gradual: bool = True) -> GunnNet:
    return GunnNet(**_GUNN18, gradual=gradual, num_classes=num_classes)


@register_model(family="gunn", paper=_PAPER, year=2018, data=IMAGENET, top1_err=26.16,
                top5_err=8.48, params=28_909_736, figures="Table 4")
def sunn18(*, num_classes: int = 1000) -> GunnNet:
    return GunnNet(**_GUNN18, gradual=False, num_classes=num_classes)


@register_model(family="gunn", paper=_PAPER, year=2018, data=IMAGENET, top1_err=20.59,
                top5_err=5.52, params=45_624_936, twin="wide_sunn18", figures="Table 4")
def wide_gunn18(*, num_classes: int = 1000, gradual: bool = True) -> GunnNet:
    return GunnNet(**_WIDE18, gradual=gradual, num_classes=num_classes)


@register_model(family="gunn", paper=_PAPER, year=2018, data=IMAGENET, params=45_624_936,
                notes="SUNN twin of Wide GUNN-18 (not in the paper)")
def wide_sunn18(*, num_classes: int = 1000) -> GunnNet:
    return GunnNet(**_WIDE18, gradual=False, num_classes=num_classes)
