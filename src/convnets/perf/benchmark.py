"""Timing a model's inference or training step, alone or side by side with a reference.

Conventions (stated once, used everywhere):

* A *repeat* is one batch: one forward pass (``infer``) or one training step
  (``train``: forward, cross-entropy on random labels, backward, SGD step). The figures are
  the median and the min/max over repeats of the latency per batch and of images/s
  (``batch / latency``); ``images_per_s`` is ``batch / median latency``.
* FLOPs are 2 x multiply-adds as :func:`convnets.perf.profile.count_flops` counts them
  (the figure ``convnets summary`` prints). A training step counts as 3 x the forward pass
  (the backward pass costs about twice the forward: gradients for inputs and for weights).
* The ceiling is this machine's rate on a large square matrix product in the same
  precision, timed just before the model; ``fraction_of_ceiling`` is achieved / ceiling.
* Memory: on CUDA the peak of ``torch.cuda.max_memory_allocated`` over the timed steps; in
  ``train`` mode, on any device, the bytes autograd saves for backward during one step
  (:func:`convnets.perf.profile.saved_tensor_bytes`). On CPU in ``infer`` mode no memory
  figure is given.
* With a comparison, both models get the same batch, precision, channels-last and compile
  flags (a fair race); ``--optimize`` is ours only, since it is our own inference path.
  Steps run interleaved (ours, theirs, ours, theirs, ...) so that a load change on a shared
  machine hits both sides alike; ``ratio`` is ours / theirs of the median images/s.
"""
from __future__ import annotations

import shutil
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import nn

from ..core import autocast, local_device, parse_input_size  # the engine's own mixed precision, timed as it trains
from ..errors import ConfigError
from ..models.registry import create_model, list_models, model_info
from ..allocator import keep_freed_memory
from .optimize import PRECISIONS
from .optimize import optimize as optimize_model
from .profile import check_input_size, count_flops, saved_tensor_bytes

__all__ = ["BenchResult", "SideResult", "benchmark", "counterpart", "format_result", "matmul_ceiling"]

# GUNN networks are their SUNN twins with the layers updated in sequence.
@dataclass
class SideResult:
    """One model's figures (see the module docstring for the conventions)."""

    name: str
    source: str  # "convnets", "torchvision" or "timm"
    latencies_s: list[float]
    median_latency_s: float
    min_latency_s: float
    max_latency_s: float
    images_per_s: float  # batch / median latency
    min_images_per_s: float
    max_images_per_s: float
    flops_per_image: int  # forward pass, 2 x multiply-adds
    flops_per_step: int  # batch x forward, x 3 in train mode
    achieved_gflops: float
    fraction_of_ceiling: float
    peak_memory_bytes: int | None  # CUDA only
    saved_bytes: int | None  # train mode only


@dataclass
class BenchResult:
    model: str
    mode: str
    device: str
    batch: int
    input_size: tuple[int, int, int]
    amp: str | None
    channels_last: bool
    optimize: bool
    compile: bool
    warmup: int
    repeats: int
    ceiling_gflops: float
    ceiling_matmul_size: int
    ours: SideResult
    theirs: SideResult | None = None
    compare: str | None = None
    ratio: float | None = None  # ours / theirs, median images/s
    allocator: str = ""  # what keep_freed_memory() did: "applied" or why not (both sides share it)

    def to_dict(self) -> dict:
        return asdict(self)


def _counterparts(library: str) -> dict[str, str] | None:
    """Our name -> theirs in ``library``: the registry's ``torchvision``/``timm`` fields
    (architectures that match ours layer for layer), or our SUNN twins."""
    if library not in ("torchvision", "timm", "sunn"):
        return None
    field = {"sunn": "twin"}.get(library, library)
    infos = (model_info(n) for n in list_models())
    return {i.name: theirs for i in infos if (theirs := getattr(i, field))}


def counterpart(name: str, library: str) -> str:
    """Their name for our model ``name`` in ``library`` (torchvision, timm or sunn)."""
    table = _counterparts(library)
    if table is None:
        raise ConfigError.of("compare", f"{library!r} is not one of torchvision, timm, sunn")
    if name not in table:
        raise ConfigError.of("compare", f"{library} has no counterpart of {name} (it has: "
                             f"{', '.join(sorted(table)) or 'none'})")
    return table[name]


def _their_model(library: str, name: str, num_classes: int) -> nn.Module:
    if library == "sunn":
        return create_model(name, num_classes=num_classes)
    if library == "timm":
        try:
            import timm
        except ImportError:
            raise ConfigError.of("compare", "timm needs the timm package (pip install timm)") from None
        return timm.create_model(name, pretrained=False, num_classes=num_classes)
    import torchvision

    kwargs: dict = {"weights": None, "num_classes": num_classes}
    if name in ("googlenet", "inception_v3"):  # no auxiliary heads; ours are timed likewise
        kwargs.update(aux_logits=False, init_weights=True)
    return getattr(torchvision.models, name)(**kwargs)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_ceiling(device: torch.device, amp: str | None, size: int | None = None,
                   repeats: int = 3) -> tuple[float, int]:
    """GFLOP/s of an ``size`` x ``size`` matrix product in the given precision (best of
    ``repeats`` after one warm-up): what this machine can do at best, for the fraction."""
    size = size or (8192 if device.type == "cuda" else 2048)
    dtype = PRECISIONS[amp or "fp32"]
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = float("inf")
    for i in range(repeats + 1):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        if i:
            best = min(best, time.perf_counter() - t0)
    return 2 * size ** 3 / best / 1e9, size


def _logits(out) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out  # e.g. GoogLeNet's aux outputs


def _step_fn(model: nn.Module, mode: str, x: torch.Tensor, device: torch.device,
             amp: str | None) -> Callable[[], None]:
    if mode == "infer":
        model.eval()

        def infer() -> None:
            with torch.inference_mode(), autocast(device, amp):
                model(x)
        return infer

    model.train()
    y = torch.randint(0, 2, (x.shape[0],), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    loss_fn = nn.CrossEntropyLoss()

    def train() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(device, amp):
            loss = loss_fn(_logits(model(x)).float(), y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
    return train


def _saved_bytes(model: nn.Module, x: torch.Tensor, device: torch.device, amp: str | None) -> int:
    def forward():
        with autocast(device, amp):
            return _logits(model(x)).float().sum()
    nbytes, loss = saved_tensor_bytes(forward)
    del loss
    return nbytes


def _check(mode: str, batch: int, warmup: int, repeats: int, amp: str | None,
           device: torch.device, compile: bool, optimize: bool) -> None:
    if mode not in ("infer", "train"):
        raise ConfigError.of("mode", f"{mode!r} is not infer or train")
    if batch < 1:
        raise ConfigError.of("batch", f"must be at least 1, got {batch}")
    if warmup < 0:
        raise ConfigError.of("warmup", f"must be 0 or more, got {warmup}")
    if repeats < 1:
        raise ConfigError.of("repeats", f"must be at least 1, got {repeats}")
    if amp not in (None, "bf16", "fp16"):
        raise ConfigError.of("amp", f"{amp!r} is not bf16 or fp16")
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError.of("amp", "fp16 needs a CUDA GPU (CPUs have no fast fp16 matrix "
                             "units and its loss scaling is for GPUs); use bf16")
    if compile:
        if not torch._dynamo.is_dynamo_supported():
            raise ConfigError.of("compile", "torch.compile does not support this Python/PyTorch")
        if device.type == "cpu" and shutil.which("cc") is None and shutil.which("gcc") is None:
            raise ConfigError.of("compile", "torch.compile on CPU needs a C compiler (cc)")
    if optimize and mode == "train":
        raise ConfigError.of("optimize", "is an inference path; use it with --mode infer")


def benchmark(model: str, *, mode: str = "infer", batch: int = 16,
              input_size: str | int | tuple | None = None, amp: str | None = None,
              channels_last: bool = False, optimize: bool = False, compile: bool = False,
              compare: str | None = None, warmup: int = 5, repeats: int = 20,
              device: str | None = None, ceiling_size: int | None = None) -> BenchResult:
    """Time ``model`` (a registered name) and, with ``compare``, its counterpart in
    torchvision, timm or (for GUNN) our SUNN twin, interleaved. See the module docstring."""
    info = model_info(model)  # an unknown name raises UnknownModelError, with its own message
    model = info.name
    dev = local_device(device or "auto")
    _check(mode, batch, warmup, repeats, amp, dev, compile, optimize)
    size = (parse_input_size(input_size, info.input_size[0]) if input_size is not None
            else tuple(info.input_size))
    check_input_size(model, size)
    allocator = keep_freed_memory()  # process-wide: every side runs under the same malloc
    if compare is None and info.twin:
        compare = "sunn"
    their_name = counterpart(model, compare) if compare else None

    sides: list[tuple[str, str, nn.Module, int]] = []
    ours = create_model(model).to(dev)
    sides.append((model, "convnets", ours, count_flops(model, size)))
    if their_name is not None:
        theirs = _their_model(compare, their_name, info.num_classes).to(dev).eval()
        with torch.no_grad():
            their_flops = count_flops(theirs, size)
        sides.append((their_name, "convnets" if compare == "sunn" else compare, theirs, their_flops))

    ceiling, ceiling_n = matmul_ceiling(dev, amp, ceiling_size)
    torch.manual_seed(0)
    x = torch.randn(batch, *size, device=dev)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    steps, saved = [], []
    for i, (_, _, net, _) in enumerate(sides):
        if channels_last:
            net.to(memory_format=torch.channels_last)
        saved.append(_saved_bytes(net.train(), x, dev, amp) if mode == "train" else None)
        if i == 0 and optimize:
            net = optimize_model(net.eval(), precision=amp or "fp32", compile=compile,
                                 input_size=size)
        elif compile:
            net = torch.compile(net)
        steps.append(_step_fn(net, mode, x, dev, amp))

    for _ in range(warmup):
        for step in steps:
            step()
    _sync(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times: list[list[float]] = [[] for _ in steps]
    peaks: list[int | None] = [None for _ in steps]
    for _ in range(repeats):
        for i, step in enumerate(steps):  # A B A B: a load change hits both sides alike
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            _sync(dev)
            t0 = time.perf_counter()
            step()
            _sync(dev)
            times[i].append(time.perf_counter() - t0)
            if dev.type == "cuda":
                peaks[i] = max(peaks[i] or 0, torch.cuda.max_memory_allocated(dev))

    results = []
    for (name, source, _, flops), lat, peak, sb in zip(sides, times, peaks, saved):
        med = statistics.median(lat)
        per_step = flops * batch * (3 if mode == "train" else 1)
        achieved = per_step / med / 1e9
        results.append(SideResult(
            name=name, source=source, latencies_s=lat, median_latency_s=med,
            min_latency_s=min(lat), max_latency_s=max(lat), images_per_s=batch / med,
            min_images_per_s=batch / max(lat), max_images_per_s=batch / min(lat),
            flops_per_image=flops, flops_per_step=per_step, achieved_gflops=achieved,
            fraction_of_ceiling=achieved / ceiling, peak_memory_bytes=peak, saved_bytes=sb))
    result = BenchResult(model=model, mode=mode, device=str(dev), batch=batch, input_size=size,
                         amp=amp, channels_last=channels_last, optimize=optimize, compile=compile,
                         warmup=warmup, repeats=repeats, ceiling_gflops=ceiling,
                         ceiling_matmul_size=ceiling_n, ours=results[0], allocator=allocator)
    if len(results) > 1:
        result.theirs, result.compare = results[1], compare
        result.ratio = results[0].images_per_s / results[1].images_per_s
    return result


def format_result(r: BenchResult) -> str:
    """The human-readable table ``convnets benchmark`` prints."""
    prec = r.amp or "fp32"
    lines = [f"{r.model}  mode={r.mode}  device={r.device}  batch={r.batch}  "
             f"input={'x'.join(map(str, r.input_size))}  precision={prec}"
             f"{'  channels-last' if r.channels_last else ''}{'  optimize' if r.optimize else ''}"
             f"{'  compile' if r.compile else ''}  warmup={r.warmup}  repeats={r.repeats}",
             f"ceiling: {r.ceiling_gflops:.1f} GFLOP/s ({prec} {r.ceiling_matmul_size}^2 matmul)",
             f"{'model':<22} {'source':<12} {'img/s med':>10} {'[min, max]':>18} "
             f"{'ms/batch med':>13} {'GFLOP/s':>9} {'of ceil':>8} {'memory':>12}"]
    for s in [r.ours] + ([r.theirs] if r.theirs else []):
        mem = s.peak_memory_bytes if s.peak_memory_bytes is not None else s.saved_bytes
        mem_text = f"{mem / 2**20:,.1f} MiB" if mem is not None else "-"
        lines.append(f"{s.name:<22} {s.source:<12} {s.images_per_s:>10.2f} "
                     f"{f'[{s.min_images_per_s:.2f}, {s.max_images_per_s:.2f}]':>18} "
                     f"{s.median_latency_s * 1e3:>13.1f} {s.achieved_gflops:>9.1f} "
                     f"{s.fraction_of_ceiling:>8.1%} {mem_text:>12}")
    if r.ratio is not None:
        lines.append(f"ratio ours/theirs (median img/s): {r.ratio:.3f}")
    mem_kind = ("peak CUDA allocated" if r.device.startswith("cuda") else
                "saved for backward" if r.mode == "train" else "not measured on CPU inference")
    lines.append(f"FLOPs = 2 x multiply-adds{', train step = 3 x forward' if r.mode == 'train' else ''}; "
                 f"memory: {mem_kind}")
    lines.append(f"malloc: freed memory kept for reuse ({r.allocator}; see convnets.allocator)"
                 if r.allocator == "applied" else f"malloc: system defaults ({r.allocator})")
    return "\n".join(lines)
