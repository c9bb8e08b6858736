"""An inference fast path for any registered model: ``optimize(model)``.

What it does, on a deep copy (the model passed in is never modified):

- evaluation mode, and every call runs under ``torch.inference_mode`` (no autograd);
- batch norm folded into the convolution that directly precedes it;
- channels-last memory format;
- the precision asked for: fp32, bf16 or fp16 (weights cast; the module takes float32
  images of any dtype and returns float32 logits, so callers do not change);
- optionally ``torch.compile``, with the compile time recorded at the first call.

Finding conv -> BN pairs. One mechanism serves every family: one forward pass of the copy
on a single image, watched in two ways. Forward hooks on every Conv2d and BatchNorm2d
record what each module returned and received, and a ``TorchFunctionMode`` records every
torch function that touches a tensor of interest. A BN is folded into a conv only if all
of these held in that pass:

- the conv and the BN module were each called exactly once;
- the conv's weight (and bias, if any) went into exactly one torch function, the
  ``conv2d`` that produced the conv module's output - so the weights are not also read
  elsewhere, as GUNN's gradual update reads slices of them;
- the BN module received that very output tensor, and nothing else used the tensor
  (apart from shape queries), so no other branch sees the un-normalised values;
- the BN's weight, bias and running statistics went into exactly one torch function.

Anything the pass does not see called as a module is left as it is, which is always
correct. GUNN's layers use their convs and BNs functionally, on row slices, so the pass
cannot see them; each BN there follows its stacked convolution channel for channel, so
``GunnLayer.fold_batch_norms`` folds them all before the pass (in either update order),
and the gradual update then runs without a normalisation pass per segment. The numbers
folded and left are ``OptimizedModel.bn_folded`` and ``bn_left``.

Pre-activation BN (BN -> ReLU -> conv, as in DenseNet, pre-activation ResNet and GUNN's
units) is left as a BatchNorm2d. It cannot go into the following convolution through the
ReLU, and in evaluation mode it already is one per-channel scale and shift: turning it
into a separate affine module would compute the same thing by another name. BN folded
forward into the next conv (no ReLU between) is not done either: with zero padding the
shifted border would differ.

fp16 on CPU is refused (:class:`~convnets.errors.ConfigError`): PyTorch's CPU kernels for
half precision are slow fallbacks, so the "fast path" would be slower than fp32; bf16 is
the CPU low-precision type. Folding is done in float64 on the float32 model, before any
cast, so the folded weights are rounded once.
"""
from __future__ import annotations

import copy
import time
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import ConfigError
from ..models.gunn import GunnLayer
from ..models.gunn_fast import fold_into_conv
from ..models.layers import ConvNet

__all__ = ["OptimizedModel", "optimize", "fold_batch_norms", "PRECISIONS"]

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# Torch functions that read only a tensor's metadata, not its values: a conv output
# queried this way may still be folded.
_METADATA = {"size", "dim", "ndim", "shape", "dtype", "device", "numel", "layout",
             "is_floating_point", "requires_grad", "is_cuda", "__len__"}


def _name(func: Any) -> str:
    owner = getattr(func, "__self__", None)  # property getters: Tensor.shape.__get__
    if getattr(func, "__name__", "") == "__get__" and owner is not None:
        return getattr(owner, "__name__", "")
    return getattr(func, "__name__", "")


class _Watch(TorchFunctionMode):
    """Counts, per watched tensor (by identity), the torch functions that took it."""

    def __init__(self) -> None:
        super().__init__()
        self.watched: dict[int, torch.Tensor] = {}   # id -> tensor (kept alive: ids stay unique)
        self.uses: dict[int, list[tuple[str, Any]]] = {}
        self.conv_outputs: dict[int, torch.Tensor] = {}  # id(weight) -> conv2d output
        self.inside_bn: list[nn.Module] = []

    def watch(self, t: torch.Tensor) -> None:
        self.watched[id(t)] = t
        self.uses.setdefault(id(t), [])

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = _name(func)
        flat = list(args) + list(kwargs.values())
        flat += [a for x in flat if isinstance(x, (list, tuple)) for a in x]
        touched = [id(x) for x in flat if isinstance(x, torch.Tensor) and id(x) in self.watched]
        out = func(*args, **kwargs)
        if name not in _METADATA:
            where = self.inside_bn[-1] if self.inside_bn else None
            for key in touched:
                self.uses[key].append((name, where))
        if name == "conv2d":
            weight = args[1] if len(args) > 1 else kwargs.get("weight")
            if isinstance(weight, torch.Tensor):
                self.conv_outputs[id(weight)] = out
        return out


def fold_batch_norms(model: nn.Module, example: torch.Tensor) -> tuple[int, int]:
    """Fold, in place, every BatchNorm2d that directly follows a Conv2d (see the module
    docstring for the conditions), found by one forward pass of ``example`` through the
    model in evaluation mode. Returns (folded, left) counts of BatchNorm2d modules."""
    model.eval()
    gunn_folded = sum(m.fold_batch_norms() for m in model.modules() if isinstance(m, GunnLayer))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    watch = _Watch()
    for m in convs + bns:
        for t in (m.weight, m.bias, getattr(m, "running_mean", None), getattr(m, "running_var", None)):
            if isinstance(t, torch.Tensor):
                watch.watch(t)
    calls: dict[nn.Module, int] = {m: 0 for m in convs + bns}
    conv_out: dict[nn.Module, torch.Tensor] = {}
    bn_in: dict[nn.Module, torch.Tensor] = {}

    def conv_hook(m, args, out):
        calls[m] += 1
        conv_out[m] = out
        if isinstance(out, torch.Tensor):
            watch.watch(out)

    def bn_pre(m, args):
        calls[m] += 1
        bn_in[m] = args[0] if args else None
        watch.inside_bn.append(m)

    def bn_post(m, args, out):
        watch.inside_bn.pop()

    handles = [m.register_forward_hook(conv_hook) for m in convs]
    handles += [m.register_forward_pre_hook(bn_pre) for m in bns]
    handles += [m.register_forward_hook(bn_post) for m in bns]
    try:
        with torch.inference_mode(), watch:
            model(example)
    finally:
        for h in handles:
            h.remove()

    def used_once(t: torch.Tensor | None, name: str) -> bool:
        return t is None or [u[0] for u in watch.uses.get(id(t), [])] == [name]

    producer = {id(out): conv for conv, out in conv_out.items() if calls[conv] == 1}
    pairs = []
    for bn in bns:
        x = bn_in.get(bn)
        conv = producer.get(id(x)) if isinstance(x, torch.Tensor) else None
        if conv is None or calls[bn] != 1 or not bn.track_running_stats:
            continue
        if watch.conv_outputs.get(id(conv.weight)) is not x:  # the conv2d made it, from these weights
            continue
        if not (used_once(conv.weight, "conv2d") and used_once(conv.bias, "conv2d")):
            continue
        if conv.bias is None and type(conv).forward is not nn.Conv2d.forward:
            continue  # a custom forward might not add a bias we create
        if any(where is not bn for _, where in watch.uses[id(x)]):
            continue  # the raw conv output is read outside this BN
        if not all(used_once(t, "batch_norm") for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var)):
            continue
        pairs.append((conv, bn))
    del watch, conv_out, bn_in, producer

    folded = {id(bn) for _, bn in pairs}
    with torch.no_grad():
        for conv, bn in pairs:
            fold_into_conv(conv, bn)
    _replace(model, folded)
    return gunn_folded + len(pairs), len(bns) - len(pairs)


def _replace(model: nn.Module, folded: set[int]) -> None:
    """Swap each folded BN for an Identity, under every name that refers to it."""
    for parent in list(model.modules()):
        for key, child in list(parent._modules.items()):
            if child is not None and id(child) in folded:
                parent._modules[key] = nn.Identity()


class OptimizedModel(nn.Module):
    """The inference module :func:`optimize` returns. Takes float images (B, C, H, W) and
    returns float32 logits; runs under ``torch.inference_mode``.

    ``bn_folded`` / ``bn_left``: BatchNorm2d modules folded away / kept (pre-activation).
    ``compile_s``: seconds the first call took when compiled (compilation happens then),
    ``None`` before it or without ``compile``.
    """

    def __init__(self, model: nn.Module, precision: str, compiled: bool, bn_folded: int,
                 bn_left: int, device: torch.device) -> None:
        super().__init__()
        self.model = model
        self.precision, self.dtype = precision, PRECISIONS[precision]
        self.bn_folded, self.bn_left = bn_folded, bn_left
        self.compiled = compiled
        self.compile_s: float | None = None
        self.device = device  # where the model's weights are; inputs are moved there
        self._run = torch.compile(model) if compiled else model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            x = x.to(device=self.device, dtype=self.dtype, memory_format=torch.channels_last)
            if self.compiled and self.compile_s is None:
                start = time.perf_counter()
                out = self._run(x)
                self.compile_s = time.perf_counter() - start
            else:
                out = self._run(x)
            return out.float()

    def extra_repr(self) -> str:
        return (f"precision={self.precision}, bn_folded={self.bn_folded}, bn_left={self.bn_left}, "
                f"compiled={self.compiled}")


def optimize(model: nn.Module, precision: str = "fp32", compile: bool = False, *,
             input_size: tuple[int, int, int] | None = None) -> OptimizedModel:
    """An inference copy of ``model``: eval, BN folded, channels-last, ``precision``
    (fp32 / bf16 / fp16), optionally ``torch.compile``d. ``model`` is not modified.

    ``input_size`` (C, H, W) is the image size of the one forward pass that finds the
    conv -> BN pairs; the default is the size the model was registered for (LeNet-5:
    1 x 32 x 32, whose head takes no other), or for a model built otherwise the first
    convolution's input channels at 224 x 224.
    """
    if precision not in PRECISIONS:
        raise ConfigError.of("precision", f"must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError.of("precision", "fp16 is not offered on CPU (slow kernels there); use bf16")
    work = copy.deepcopy(model).float().eval()
    for p in work.parameters():
        p.requires_grad_(False)
    if input_size is None and isinstance(model, ConvNet):
        input_size = model.default_input_size
    if input_size is None:
        first = next((m for m in work.modules() if isinstance(m, nn.Conv2d)), None)
        input_size = (first.in_channels if first is not None else 3, 224, 224)
    example = torch.randn(1, *input_size, device=device)
    folded, left = fold_batch_norms(work, example)
    work = work.to(dtype=PRECISIONS[precision], memory_format=torch.channels_last)
    return OptimizedModel(work, precision, compile, folded, left, device)
