"""Batch norm synchronised over data-parallel processes, on CPU (gloo) and GPU (NCCL).

Batch norm normalises with the mean and variance of the mini-batch (Ioffe & Szegedy 2015,
Algorithm 1). With W processes of B images each, plain batch norm takes them over each
process's B images; :class:`SyncBatchNorm2d` takes them over all W*B, so that W processes x B
compute what one process x W*B computes (Goyal et al. 2017, Sec. 2.3, keep per-process
statistics on purpose; small per-process batches want them synced).

Why a layer of our own rather than ``nn.SyncBatchNorm``: PyTorch's refuses CPU tensors in
training and DistributedDataParallel refuses it in CPU models, so it cannot run with gloo;
and it is not a ``BatchNorm2d``, so code that looks for ``BatchNorm2d`` would pass it by.
SyncBatchNorm2d *is* a BatchNorm2d: the same parameters, buffers and state-dict keys, so a
checkpoint trained with it loads into the plain model. Outside training, or without a process
group of more than one process, it is exactly BatchNorm2d (it calls BatchNorm2d's forward).

One mechanism serves every caller: the layer, the functional form models use when they run
batch norm on slices of a layer (GUNN's segments, DenseNet's recomputation,
:func:`batch_norm_rows`), and GUNN's hand-written backward (:func:`sync_forward`,
:func:`sync_backward`). It is built from batch-norm kernels that exist on both devices and
``torch.distributed``, so it is the same code on CPU and GPU; using PyTorch's CUDA-only
fused kernels on GPUs would make two mechanisms to keep in step, for a speed difference
not measured here (no GPU). The costs on CPU are in benchmarks/RESULTS.md.

- forward: one all-reduce of ``[count, count*mean, count*(var + mean^2)]`` per channel. Each
  process's mean and variance come from native batch norm's statistics kernel; the sums
  are combined in float64, so that ``E[x^2] - E[x]^2`` does not cancel. The running
  statistics then move as BatchNorm2d's do (momentum, or a cumulative average when
  momentum is None; unbiased variance, over the global count).
- backward: the input gradient needs two per-channel sums over the whole batch, sum(dy) and
  sum(dy * (x - mean)): one all-reduce of both. The weight and bias gradients stay per
  process: DistributedDataParallel averages them as it averages every parameter's gradient,
  which with the summed input gradients is the gradient of the mean loss over all W*B images.

Collectives are issued in forward and backward order, which is the same on every process
because every process runs the same graph. Synchronisation happens only in training mode:
evaluation may run on one process alone (rank 0 evaluates), where a collective would wait
for ever.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

__all__ = ["SyncBatchNorm2d", "batch_norm_rows", "running_factor", "sync_group",
           "sync_batch_norm", "sync_forward", "sync_backward"]

def _dims(x: torch.Tensor) -> list[int]:
    """Every dimension but the channels (dimension 1), for (B, C, H, W) and (rows, C)."""
    return [0, *range(2, x.dim())]


def _per_channel(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.view(1, -1, *([1] * (x.dim() - 2)))


def _stat_dtype(x: torch.Tensor) -> torch.dtype:
    # Statistics in float32 at least, as batch norm keeps them under mixed precision.
    return torch.promote_types(x.dtype, torch.float32)


def sync_group(bn: nn.Module):
    """The process group ``bn`` synchronises over in this pass, or None when it normalises
    alone (plain batch norm, eval mode, or no process group of more than one process)."""
    if not (isinstance(bn, SyncBatchNorm2d) and bn.training and dist.is_available()
            and dist.is_initialized()):
        return None
    group = bn.process_group if bn.process_group is not None else dist.group.WORLD
    return group if dist.get_world_size(group) > 1 else None


def running_factor(bn: nn.Module) -> float:
    """The running-average factor BatchNorm2d itself would use in this step (called after
    the batch was counted in ``num_batches_tracked``)."""
    if bn.momentum is None and bn.num_batches_tracked is not None:
        return 1.0 / max(int(bn.num_batches_tracked), 1)  # cumulative average
    return 0.0 if bn.momentum is None else bn.momentum


# --- the synchronised computation --------------------------------------------------------

def _moments(x: torch.Tensor, group) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance over every process's ``x``, and the value
    counts ``[this process, all processes]`` (float64). ``group=None``: this process alone."""
    c, n, dtype = x.shape[1], x.numel() // max(x.shape[1], 1), _stat_dtype(x)
    if n:
        # Native batch norm's own statistics kernel (many times faster than torch.var_mean
        # on CPU); float32 results for low-precision input come from float32 running
        # statistics, here throw-away ones that momentum 0 leaves as they are.
        mean, var = torch.batch_norm_update_stats(
            x, x.new_zeros(c, dtype=dtype), x.new_ones(c, dtype=dtype), 0.0)
    else:  # an empty share still takes part in the collective
        mean = var = x.new_zeros(c, dtype=dtype)
    m = mean.double()
    sums = torch.cat([m.new_ones(1), m, var.double() + m * m]) * n  # sums of 1, x and x^2
    if group is not None:
        dist.all_reduce(sums, group=group)
    moments = sums[1:].view(2, c) / sums[0]
    var = (moments[1] - moments[0] * moments[0]).clamp_min_(0)
    counts = torch.cat([sums.new_full((1,), float(n)), sums[:1]])
    return moments[0].to(dtype), var.to(dtype), counts


def sync_forward(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                 running_mean: torch.Tensor | None, running_var: torch.Tensor | None,
                 factor: float, eps: float, group):
    """Training-mode batch norm of ``x`` (channels in dimension 1) with statistics over
    every process of ``group``. Updates ``running_mean``/``running_var`` in place when
    given. Returns ``(y, mean, invstd, counts)``; the last three are what
    :func:`sync_backward` needs."""
    mean, var, counts = _moments(x, group)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.lerp_(mean, factor)
            running_var.lerp_(var * (counts[1] / (counts[1] - 1)).to(var.dtype), factor)
    # The normalisation itself is inference-mode batch norm with the global statistics:
    # one fused kernel on either device.
    y = torch.native_batch_norm(x, weight, bias, mean, var, False, 0.0, eps)[0]
    return y, mean, torch.rsqrt(var + eps), counts


def sync_backward(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor | None,
                  mean: torch.Tensor, invstd: torch.Tensor, counts: torch.Tensor, group):
    """Gradients ``(dx, dweight, dbias)`` of :func:`sync_forward`; dweight and dbias are
    this process's share (summed over processes by data parallelism, like any gradient).

    The native kernel, given the global mean and invstd, returns this process's sums
    db = sum(dy) and dw = sum(dy * xhat) and the input gradient with them divided by its
    own count n: ``w*invstd*(dy - db/n - xhat*dw/n)``. The gradient over the whole batch
    uses the sums over every process and their count N instead; the difference is affine
    in x per channel, added in place.
    """
    w = weight if weight is not None else torch.ones_like(mean)
    if x.numel():
        dx, dw, db = torch.ops.aten.native_batch_norm_backward(
            dy, x, w, None, None, mean, invstd, True, 0.0, [True, True, True])
    else:  # an empty share (the native kernel divides by its count) still joins in
        dx, dw, db = torch.zeros_like(x), torch.zeros_like(w), torch.zeros_like(w)
    local = torch.cat([db, dw])
    total = local.clone()
    if group is not None:
        dist.all_reduce(total, group=group)
    k = w * invstd
    shift = (local / counts[0] - total / counts[1]).to(k.dtype).view(2, -1)
    a = k * invstd * shift[1]  # the slope in x of k * xhat * shift_w
    dx.addcmul_(x, _per_channel(a, x)).add_(_per_channel(k * shift[0] - a * mean, x))
    return dx, dw, db


class _SyncBatchNormFunction(torch.autograd.Function):
    """Keeps what native batch norm keeps for backward: input, weight, mean and invstd."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, factor, eps, group):
        y, mean, invstd, counts = sync_forward(x, weight, bias, running_mean, running_var,
                                               factor, eps, group)
        ctx.save_for_backward(x, weight, mean, invstd, counts)
        ctx.group, ctx.has_bias = group, bias is not None
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy):
        x, weight, mean, invstd, counts = ctx.saved_tensors
        dx, dw, db = sync_backward(dy, x, weight, mean, invstd, counts, ctx.group)
        return (dx, dw if weight is not None else None, db if ctx.has_bias else None,
                None, None, None, None, None)


def sync_batch_norm(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                    running_mean: torch.Tensor | None, running_var: torch.Tensor | None,
                    factor: float, eps: float, group) -> torch.Tensor:
    """Differentiable training-mode batch norm over every process of ``group``
    (``group=None``: this process alone, through the same code)."""
    return _SyncBatchNormFunction.apply(x, weight, bias, running_mean, running_var, factor,
                                        eps, group)


# --- the layer and its functional form ---------------------------------------------------

class SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are taken over every process of
    ``process_group`` (None: all processes). Convert a model with
    ``convnets.engine.distributed.convert_sync_batchnorm``."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, process_group=None,
                 device=None, dtype=None, *, bias: bool = True) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype,
                         bias=bias)
        self.process_group = process_group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if sync_group(self) is None:
            return super().forward(x)
        self._check_input_dim(x)
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
        return batch_norm_rows(self, x)


def batch_norm_rows(bn: nn.Module, x: torch.Tensor, rows: slice = slice(None), *,
                    update_stats: bool = True) -> torch.Tensor:
    """What ``bn`` computes in this pass for its channels ``rows``, ``x`` holding just those
    channels: batch norm on slices of its parameters and running statistics, synchronised
    when ``bn`` is. The running statistics of those channels move in place through the
    slices, unless ``update_stats`` is False (a recomputation: the same operation on
    throw-away copies). The caller counts the batch in ``num_batches_tracked``, once per
    forward pass, as the module does.
    """
    if not isinstance(bn, nn.BatchNorm2d):
        # nn.SyncBatchNorm included: it synchronises in its own forward only, which these
        # paths would silently bypass.
        raise TypeError(f"batch norm on slices of a layer needs a BatchNorm2d (synchronised: "
                        f"convert_sync_batchnorm in convnets.engine.distributed), got "
                        f"{type(bn).__name__}")
    training = bn.training or bn.running_mean is None
    mean = var = None
    if bn.running_mean is not None:
        mean, var = bn.running_mean[rows], bn.running_var[rows]
        if training and not update_stats:
            mean, var = mean.clone(), var.clone()
    weight = bn.weight[rows] if bn.weight is not None else None
    bias = bn.bias[rows] if bn.bias is not None else None
    group = sync_group(bn)
    if group is not None:
        return sync_batch_norm(x, weight, bias, mean, var, running_factor(bn), bn.eps, group)
    return F.batch_norm(x, mean, var, weight, bias, training, running_factor(bn), bn.eps)
