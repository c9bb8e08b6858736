"""What each CPU measure of the fast gradual update buys: GUNN-15's training step as it
runs (default), with one measure undone at a time, and SUNN-15's, interleaved in one process.

- blocks of segments (``models/gunn_fast.py``): the default takes the segments' first
  products in blocks of about sqrt(P); undone as blocks of 1 (every segment reads the whole
  state) and as one block a layer;
- batch norm on a view of whole cache lines (``models/narrow_batchnorm.py``): undone as the
  native kernel on the (rows, C) matrix.

    PYTHONPATH=src python benchmarks/gunn_speedups.py               # batch 64, 32x32
    PYTHONPATH=src python benchmarks/gunn_speedups.py --quick       # tiny, checks the script
"""
from __future__ import annotations

import argparse
import functools
import os
import statistics
import time

import torch
from torch import nn

from convnets import create_model
from convnets.allocator import keep_freed_memory
from convnets.models import gunn_fast, narrow_batchnorm
from convnets.perf.machine import cpu_description

DEFAULT = gunn_fast._blocks
NARROW = narrow_batchnorm.fold_factor


def _native_batch_norm(x: torch.Tensor) -> int:
    return 1


def _step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batch, repeats = (4, 1) if args.quick else (args.batch, args.repeats)
    keep_freed_memory()
    torch.manual_seed(0)
    gunn = create_model("gunn15").to(memory_format=torch.channels_last).train()
    sunn = create_model("sunn15").to(memory_format=torch.channels_last).train()
    sunn.load_state_dict(gunn.state_dict())
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    # name -> (blocks, batch norm's fold factor, model)
    variants = {"default": (DEFAULT, NARROW, gunn),
                "blocks of 1": (functools.partial(DEFAULT, size=1), NARROW, gunn),
                "one block a layer": (functools.partial(DEFAULT, size=10 ** 6), NARROW, gunn),
                "native batch norm": (DEFAULT, _native_batch_norm, gunn),
                "sunn15": (DEFAULT, NARROW, sunn)}
    times: dict[str, list[float]] = {name: [] for name in variants}
    load = os.getloadavg()[0]
    for rep in range(repeats + 1):  # the first round warms up
        for name, (blocks, fold, model) in variants.items():
            gunn_fast._blocks, narrow_batchnorm.fold_factor = blocks, fold
            start = time.perf_counter()
            _step(model, x, y)
            if rep:
                times[name].append(time.perf_counter() - start)
    gunn_fast._blocks, narrow_batchnorm.fold_factor = DEFAULT, NARROW
    base = statistics.median(times["sunn15"])
    print(f"{cpu_description()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"batch {batch} at 32x32, {repeats} interleaved repeats, load {load:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after")
    for name, t in times.items():
        med = statistics.median(t)
        print(f"  {name:18s} step {med:7.3f} s   / sunn15 {med / base:5.3f}")


if __name__ == "__main__":
    main()
