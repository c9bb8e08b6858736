"""Training-mode batch norm of a (rows, C) matrix with few channels, on CPU, with the
native kernels run on a view whose rows are whole cache lines.

PyTorch's CPU batch norm for channels-last data (a contiguous (rows, C) matrix is one)
reduces by giving each thread a C-wide row of one buffer and adding every input row into
it in memory. When C floats are not a whole number of 64-byte cache lines, neighbouring
threads' buffer rows share a line, and every row added moves that line between cores: on
the 2-core CPU of benchmarks/RESULTS.md, at 2 threads, C = 12, 24 and 36 (GUNN-15's
segments) took 2-6x the time per element of C = 16, 32 and 48, and ran slower than on one
thread. The same matrix viewed as (rows / k, k * C), with k * C a whole number of lines,
has no shared line: its k * C "channels" are k interleaved copies of each true channel,
whose statistics combine exactly (equal counts). The normalisation is then one
evaluation-mode pass with the combined statistics, and the backward pass takes its two
sums from the evaluation-mode backward kernel on the same view.

Results equal the native kernels' up to the order of the additions (tests:
tests/models/test_narrow_batchnorm.py).
"""
from __future__ import annotations

import math

import torch

__all__ = ["fold_factor", "forward", "backward"]

_LINE_BYTES = 64
_DTYPES = (torch.float32, torch.float64)


def fold_factor(x: torch.Tensor) -> int:
    """k for viewing ``x`` (rows, C) as (rows / k, k * C) rows of whole cache lines; 1 where
    the native kernel is used as it is: one thread (no sharing), C already whole lines, rows
    not divisible by k, another device, dtype or layout."""
    if (x.device.type != "cpu" or x.dtype not in _DTYPES or x.dim() != 2
            or not x.is_contiguous() or torch.get_num_threads() < 2):
        return 1
    per_line = _LINE_BYTES // x.element_size()
    k = per_line // math.gcd(x.shape[1], per_line)
    return k if x.shape[0] % k == 0 else 1


def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
            running_mean: torch.Tensor, running_var: torch.Tensor, factor: float, eps: float,
            k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``torch.native_batch_norm(x, ..., training=True, ...)``'s (output, mean, inverse std),
    with the running statistics moved as it moves them, computed on the k-fold view."""
    rows, c = x.shape
    view = x.view(rows // k, k * c)
    means, variances = torch.batch_norm_update_stats(view, None, None, 0.0)  # biased
    means, variances = means.view(k, c), variances.view(k, c)
    mean = means.mean(0)
    var = (variances + (means - mean) ** 2).mean(0)  # k groups of rows / k rows each
    with torch.no_grad():
        running_mean.mul_(1 - factor).add_(mean.to(running_mean.dtype), alpha=factor)
        unbiased = var * (rows / (rows - 1)) if rows > 1 else var
        running_var.mul_(1 - factor).add_(unbiased.to(running_var.dtype), alpha=factor)
    out = torch.native_batch_norm(view, weight.repeat(k), bias.repeat(k), mean.repeat(k),
                                  var.repeat(k), False, 0.0, eps)[0]
    return out.view(rows, c), mean, torch.rsqrt(var + eps)


def backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, mean: torch.Tensor,
             invstd: torch.Tensor, eps: float,
             k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``native_batch_norm_backward``'s (input, weight, bias) gradients in training mode,
    for the ``mean`` and ``invstd`` that :func:`forward` returned, on the k-fold view."""
    rows, c = x.shape
    view, grad_view = x.view(rows // k, k * c), grad.contiguous().view(rows // k, k * c)
    var = invstd.pow(-2) - eps  # evaluation mode reads the inverse std from a variance
    _, dw, db = torch.ops.aten.native_batch_norm_backward(
        grad_view, view, weight.repeat(k), mean.repeat(k), var.repeat(k), None, None, False,
        eps, [False, True, True])
    dw, db = dw.view(k, c).sum(0), db.view(k, c).sum(0)  # sum(dy * xhat), sum(dy)
    # dx = w * invstd * (dy - sum(dy) / n - xhat * sum(dy * xhat) / n), as a * dy + b * x + c
    a = weight * invstd
    b = -a * invstd * dw / rows
    const = -a * db / rows - b * mean
    dx = torch.addcmul(const.repeat(k), grad_view, a.repeat(k))
    dx.addcmul_(view, b.repeat(k))
    return dx.view(rows, c), dw, db
