"""Time ResNet-50 inference: torchvision eager fp32 vs convnets.optimize fp32 and bf16.

Interleaved rounds (A B C A B C ...), one warm-up call each, median seconds per batch,
reported as ratios to torchvision eager. Usage:

    PYTHONPATH=src python benchmarks/optimize_bench.py [--batch 16] [--size 224] [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

import convnets
from convnets.perf.optimize import optimize


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size)
    eager = torchvision.models.resnet50().eval()
    ours = convnets.create_model("resnet50")
    ours.load_state_dict(eager.state_dict())
    ours.eval()

    def tv(x):
        with torch.inference_mode():
            return eager(x)

    runs = {"torchvision eager fp32": tv,
            "convnets.optimize fp32": optimize(ours, "fp32"),
            "convnets.optimize bf16": optimize(ours, "bf16")}
    times: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():
        fn(x)  # warm-up
    for _ in range(args.rounds):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn(x)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["torchvision eager fp32"])
    print(f"resnet50 batch {args.batch} {args.size}x{args.size}, {args.rounds} interleaved rounds, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, t in times.items():
        med = statistics.median(t)
        print(f"{name:24s} median {med:.3f} s/batch  ratio {med / base:.2f}")


if __name__ == "__main__":
    main()
