"""LeNet-5, as specified in LeCun, Bottou, Bengio, Haffner, "Gradient-Based Learning Applied
to Document Recognition", Proc. IEEE 1998, Section II.B and Appendix A.

Built as the paper lays it out, not a modernised variant:

- every layer up to F6 is squashed by the scaled tanh ``1.7159 tanh(2/3 a)`` (Appendix A);
- S2 and S4 are trainable sub-sampling layers: the sum of a 2x2 window times one coefficient
  per map plus one bias per map (Section II.B);
- C3 connects each of its 16 maps to a subset of the 6 S2 maps (Table 1);
- the output layer is a Euclidean RBF (Eq. 7) whose centres the paper "chose by hand and
  kept fixed", so they are a buffer, not parameters. The paper's centres are stylised 7x12
  bitmaps of the characters; here they are fixed random +-1 codes. The paper's MAP
  criterion (Eq. 9) is softmax cross-entropy on the negated RBF outputs -y_i (less its
  constant "rubbish class" term e^-j); the logits here are -y_i / 2, a softmax temperature
  of 2 that keeps SGD with momentum stable at learning rates near 0.01 (with -y_i, lr 0.01
  left a digits model at over 50% error where -y_i / 2 reached about 10%).

Trainable parameters: C1 156 + S2 12 + C3 1,516 + S4 32 + C5 48,120 + F6 10,164 = 60,000,
the paper's "60,000 trainable parameters" (its 340,908 connections are not all weights).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvNet
from .registry import MNIST, register_model

__all__ = ["LeNet5"]


# --- helpers ---------------------------------------------------------------------------

# Table 1: the S2 maps that each C3 map reads. The first six read three contiguous maps,
# the next six four contiguous ones, three read four non-contiguous ones, the last all six;
# the paper breaks symmetry this way and keeps the connection count reasonable.
_C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


def squash(x: torch.Tensor) -> torch.Tensor:
    """Appendix A: f(a) = A tanh(S a) with A = 1.7159, S = 2/3, so that f(+-1) = +-1."""
    return 1.7159 * torch.tanh(x * (2.0 / 3.0))


def _init_fan_in(model: nn.Module) -> None:
    # Appendix A: weights uniform in [-2.4/F, 2.4/F], F the fan-in of the unit, which keeps
    # the total input of each squashing unit in its near-linear range.
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            nn.init.uniform_(m.weight, -2.4 / fan_in, 2.4 / fan_in)
            nn.init.uniform_(m.bias, -2.4 / fan_in, 2.4 / fan_in)
        elif isinstance(m, SparseConv):
            with torch.no_grad():  # the rows of one output map are contiguous
                row = 0
                for o, inputs in enumerate(m.table):
                    bound = 2.4 / (len(inputs) * m.kernel_size ** 2)
                    m.weight[row:row + len(inputs)].uniform_(-bound, bound)
                    m.bias[o:o + 1].uniform_(-bound, bound)
                    row += len(inputs)
        elif isinstance(m, Subsample):
            nn.init.uniform_(m.weight, -2.4 / 4, 2.4 / 4)
            nn.init.uniform_(m.bias, -2.4 / 4, 2.4 / 4)


# --- blocks ----------------------------------------------------------------------------

class Subsample(nn.Module):
    """S2/S4: each unit adds the four inputs of its 2x2 window, multiplies the sum by the
    map's coefficient and adds the map's bias (two parameters per map)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        window_sum = F.avg_pool2d(x, 2) * 4.0
        return window_sum * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class SparseConv(nn.Module):
    """A convolution in which output map ``o`` reads only the input maps ``table[o]``.

    Only the connected kernels are parameters (one row of ``weight`` per connection); the
    dense kernel is assembled at each call, so gradients reach exactly those kernels.
    """

    def __init__(self, in_channels: int, table: tuple[tuple[int, ...], ...],
                 kernel_size: int) -> None:
        super().__init__()
        pairs = [(o, i) for o, inputs in enumerate(table) for i in inputs]
        self.in_channels, self.out_channels, self.kernel_size = in_channels, len(table), kernel_size
        self.table = table
        self.weight = nn.Parameter(torch.empty(len(pairs), kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(len(table)))
        self.register_buffer("out_index", torch.tensor([o for o, _ in pairs]), persistent=False)
        self.register_buffer("in_index", torch.tensor([i for _, i in pairs]), persistent=False)

    def dense_weight(self) -> torch.Tensor:
        k = self.kernel_size
        dense = self.weight.new_zeros(self.out_channels, self.in_channels, k, k)
        return dense.index_put((self.out_index, self.in_index), self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dense_weight(), self.bias)


class EuclideanRBF(nn.Module):
    """Eq. 7: y_i = sum_j (x_j - w_ij)^2 with fixed centres w_i; returns -y_i / 2 as logits."""

    def __init__(self, in_features: int, out_features: int, seed: int = 0) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        g = torch.Generator().manual_seed(seed)
        codes = torch.randint(0, 2, (out_features, in_features), generator=g).float() * 2 - 1
        self.register_buffer("centers", codes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In float32 for half-precision inputs: distances of 84-dimensional vectors lose
        # most of their digits in bf16, and the CPU has no bf16 cdist.
        wide = x.float() if x.dtype in (torch.bfloat16, torch.float16) else x
        return (-0.5 * torch.cdist(wide, self.centers.to(wide.dtype)).pow(2)).to(x.dtype)


# --- model -----------------------------------------------------------------------------

class LeNet5(ConvNet):
    """C1 (6@28x28) - S2 (6@14x14) - C3 (16@10x10) - S4 (16@5x5) - C5 (120@1x1) - F6 (84) -
    RBF output, on 1x32x32 inputs (MNIST digits padded to 32x32, Section III.A)."""

    classifier_path = "output"

    def __init__(self, *, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(in_channels, 6, 5)
        self.s2 = Subsample(6)
        self.c3 = SparseConv(6, _C3_TABLE, 5)
        self.s4 = Subsample(16)
        self.c5 = nn.Conv2d(16, 120, 5)
        self.f6 = nn.Linear(120, 84)
        self.output = EuclideanRBF(84, num_classes)
        _init_fan_in(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for layer in (self.c1, self.s2, self.c3, self.s4, self.c5):
            x = squash(layer(x))
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = squash(self.f6(torch.flatten(x, 1)))
        return x if pre_logits else self.output(x)

    def head_classes(self, state_dict: dict[str, torch.Tensor]) -> int | None:
        centers = state_dict.get("output.centers")
        return int(centers.shape[0]) if centers is not None and centers.ndim == 2 else None

    def reset_classifier(self, num_classes: int) -> None:
        # A new RBF layer keeps the paper's head; its centres are fixed, so nothing to learn.
        self.output = EuclideanRBF(self.output.in_features, num_classes).to(self.f6.weight.device)


# --- builders --------------------------------------------------------------------------

@register_model(family="lenet", paper="LeCun et al., Gradient-Based Learning Applied to "
                "Document Recognition", year=1998, data=MNIST, top1_err=0.95, params=60_000,
                figures="Section III.C, without distortions",
                notes="0.8% MNIST test error with distortions; RBF centres are fixed random "
                      "+-1 codes instead of the paper's bitmaps")
def lenet5(*, num_classes: int = 10, in_channels: int = 1) -> LeNet5:
    return LeNet5(num_classes=num_classes, in_channels=in_channels)
