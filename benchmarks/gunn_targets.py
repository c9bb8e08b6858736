"""GUNN's speed targets side by side, in one process on one machine.

The paper (Qiao et al. 2018, Sec. 5) says its models "run at the speed between ResNeXt and
DenseNet". The targets, each a ratio of median images/s (or of step time) of models timed
interleaved (A B A B ...), channels last, freed memory kept for reuse:

- GUNN-18 training and inference at least DenseNet-264's images/s (batch 8, 224x224);
- GUNN-15 / SUNN-15 training step at most 1.2 at batch 64 on 32x32, and the bytes kept
  for backward equal (ratio 1.00, beyond the gradual layers' own outputs);
- GUNN-18 inference through ``convnets.optimize`` at least SUNN-18's eager speed.

    PYTHONPATH=src python benchmarks/gunn_targets.py              # the run in RESULTS.md
    PYTHONPATH=src python benchmarks/gunn_targets.py --quick      # tiny sizes, checks the script
    PYTHONPATH=src python benchmarks/gunn_targets.py --threads 1 --cpu-time

On a machine shared with other work, wall-clock ratios at two threads swing by tens of
percent (each of GUNN's many small kernels waits for a descheduled thread at its barrier);
``--threads 1 --cpu-time`` times each step by the process's CPU time on one thread, which
other processes barely move.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Callable

import torch
from torch import nn

from convnets import create_model, optimize
from convnets.allocator import keep_freed_memory
from convnets.perf.machine import cpu_description
from convnets.perf.profile import saved_tensor_bytes


def _train_step(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    model.train()
    y = torch.randint(0, 2, (x.shape[0],))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return step


def _infer(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    model.eval()

    def step() -> None:
        with torch.inference_mode():
            model(x)
    return step


CLOCK = time.perf_counter


def race(steps: dict[str, Callable[[], None]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each step, the steps interleaved, on ``CLOCK``."""
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            start = CLOCK()
            fn()
            times[name].append(CLOCK() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _model(name: str, **kw) -> nn.Module:
    return create_model(name, **kw).to(memory_format=torch.channels_last)


def _images(batch: int, size: int) -> torch.Tensor:
    return torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)


def run(quick: bool, repeats: int) -> dict:
    big, big_batch, small_batch = (64, 2, 8) if quick else (224, 8, 64)
    torch.manual_seed(0)
    out: dict = {"torch": torch.__version__, "threads": torch.get_num_threads(),
                 "machine": cpu_description(), "quick": quick,
                 "repeats": repeats}
    x = _images(big_batch, big)
    gunn18, dense = _model("gunn18"), _model("densenet264")
    train = race({"gunn18": _train_step(gunn18, x), "densenet264": _train_step(dense, x)}, repeats)
    infer = race({"gunn18": _infer(gunn18, x), "densenet264": _infer(dense, x)}, repeats)
    del dense
    sunn18 = _model("sunn18")
    sunn18.load_state_dict(gunn18.state_dict())
    fast18 = optimize(gunn18, input_size=(3, big, big))
    opt = race({"gunn18_optimize": lambda: fast18(x), "sunn18_eager": _infer(sunn18, x)}, repeats)
    del gunn18, sunn18, fast18
    xs = _images(small_batch, 32)
    gunn15, sunn15 = _model("gunn15"), _model("sunn15")
    sunn15.load_state_dict(gunn15.state_dict())
    step15 = race({"gunn15": _train_step(gunn15, xs), "sunn15": _train_step(sunn15, xs)}, repeats)
    kept = {}
    for name, model in (("gunn15", gunn15), ("sunn15", sunn15)):
        model.train()
        kept[name], loss = saved_tensor_bytes(lambda: model(xs).sum())
        del loss
    out["gunn18_train_images_per_s"] = big_batch / train["gunn18"]
    out["densenet264_train_images_per_s"] = big_batch / train["densenet264"]
    out["gunn18_infer_images_per_s"] = big_batch / infer["gunn18"]
    out["densenet264_infer_images_per_s"] = big_batch / infer["densenet264"]
    out["gunn18_optimize_images_per_s"] = big_batch / opt["gunn18_optimize"]
    out["sunn18_eager_images_per_s"] = big_batch / opt["sunn18_eager"]
    out["gunn15_step_s"], out["sunn15_step_s"] = step15["gunn15"], step15["sunn15"]
    out["gunn15_saved_bytes"], out["sunn15_saved_bytes"] = kept["gunn15"], kept["sunn15"]
    out["saved_bytes_ratio"] = kept["gunn15"] / kept["sunn15"]
    out["targets"] = {
        "gunn18 train / densenet264 >= 1": train["densenet264"] / train["gunn18"],
        "gunn18 infer / densenet264 >= 1": infer["densenet264"] / infer["gunn18"],
        "gunn15 / sunn15 train step <= 1.2": step15["gunn15"] / step15["sunn15"],
        "gunn15 / sunn15 saved bytes == 1.00": kept["gunn15"] / kept["sunn15"],
        "gunn18 optimize / sunn18 eager >= 1": opt["sunn18_eager"] / opt["gunn18_optimize"],
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, to check the script")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--cpu-time", action="store_true", help="time by process CPU time")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    global CLOCK
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cpu_time:
        CLOCK = time.process_time
    keep_freed_memory()
    load = os.getloadavg()[0]
    out = run(args.quick, args.repeats)
    out["clock"] = "process CPU time" if args.cpu_time else "wall clock"
    out["load_before"], out["load_after"] = load, os.getloadavg()[0]
    print(f"{out['machine']}, torch {out['torch']}, {out['threads']} threads, {out['clock']}, {args.repeats} interleaved repeats, "
          f"load {load:.2f} before, {out['load_after']:.2f} after")
    for key, value in out.items():
        if key.endswith(("_per_s", "_step_s")):
            print(f"  {key:34s} {value:9.3f}")
    for target, ratio in out["targets"].items():
        print(f"  {target:55s} {ratio:6.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
