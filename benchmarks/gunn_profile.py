"""Where GUNN-15's training step spends its time against SUNN-15's, and how each kind of
kernel scales from one thread to two: ``torch.profiler`` self time per operator, at 1 and
at 2 threads, the best of two profiled steps each, both models in one process.

    PYTHONPATH=src python benchmarks/gunn_profile.py              # batch 64, 32x32
    PYTHONPATH=src python benchmarks/gunn_profile.py --quick      # tiny, checks the script

An operator whose ``speed-up`` (1-thread time / 2-thread time) stays near 1 gains nothing
from the second core; SUNN's few large convolutions reach close to 2.
"""
from __future__ import annotations

import argparse
import collections
import os
import time

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from convnets import create_model
from convnets.allocator import keep_freed_memory
from convnets.perf.machine import cpu_description


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--top", type=int, default=12, help="operators shown per model")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    batch = 4 if args.quick else args.batch
    keep_freed_memory()
    torch.manual_seed(0)
    models = {n: create_model(n).to(memory_format=torch.channels_last).train() for n in ("gunn15", "sunn15")}
    models["sunn15"].load_state_dict(models["gunn15"].state_dict())
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))

    def step(model: nn.Module) -> None:
        model.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()

    # self[(model, op)][threads] = best self time (s); calls[(model, op)]; wall[(model, threads)]
    best: dict = collections.defaultdict(dict)
    calls: dict = {}
    wall: dict = collections.defaultdict(list)
    load = os.getloadavg()[0]
    for _ in range(2):
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for name, model in models.items():
                step(model)  # warm-up at this thread count
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    start = time.perf_counter()
                    step(model)
                    wall[(name, threads)].append(time.perf_counter() - start)
                for e in prof.key_averages():
                    t = e.self_cpu_time_total / 1e6
                    key = (name, e.key)
                    best[key][threads] = min(t, best[key].get(threads, t))
                    calls[key] = e.count
    print(f"{cpu_description()}, torch {torch.__version__}, batch {batch} at 32x32, "
          f"load {load:.2f} before, {os.getloadavg()[0]:.2f} after")
    for name in models:
        w1, w2 = min(wall[(name, 1)]), min(wall[(name, 2)])
        print(f"{name}: profiled step {w1:.3f} s on 1 thread, {w2:.3f} s on 2 (speed-up {w1 / w2:.2f})")
        ops = sorted((k for k in best if k[0] == name), key=lambda k: -best[k].get(1, 0.0))
        for key in ops[:args.top]:
            t1, t2 = best[key].get(1, 0.0), best[key].get(2, 0.0)
            gain = f"{t1 / t2:5.2f}" if t1 and t2 else "    -"  # not called at one of the two
            print(f"  {key[1]:36s} calls {calls[key]:5d}  1 thread {t1:6.3f} s  2 threads {t2:6.3f} s"
                  f"  speed-up {gain}")


if __name__ == "__main__":
    main()
