"""The ResNet-50 rows of the speed targets, timed interleaved in one process.

Inference, batch 16 at 224 (A B C D A B C D ...): torchvision eager fp32, convnets eager
fp32, `convnets.optimize` fp32 and bf16. Training step, batch 16: torchvision in a plain
fp32 loop against convnets the way `convnets train --channels-last --amp bf16` runs it (the
engine's autocast). Each row is reported as images/s relative to torchvision's plain fp32,
from medians; the optimized bf16 row also as achieved GFLOP/s over a bf16 2048^2 matrix
product timed just before (FLOPs = 2 x multiply-adds). Every side runs under the malloc
setting the `convnets` command applies (`convnets.allocator`; `CONVNETS_MALLOC=system`
keeps glibc's defaults for all of them). Usage:

    PYTHONPATH=src python benchmarks/resnet50_targets.py [--batch 16] [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

import convnets
from convnets.allocator import keep_freed_memory
from convnets.perf.benchmark import _step_fn, matmul_ceiling
from convnets.perf.profile import count_flops
from convnets.perf.optimize import optimize


def _interleaved(steps: dict, rounds: int) -> dict[str, float]:
    for step in steps.values():
        step()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"malloc: keep_freed_memory() -> {keep_freed_memory()} (every side)")
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, 224, 224)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    tv = torchvision.models.resnet50().eval()
    ours = convnets.create_model("resnet50").eval()
    ours.load_state_dict(tv.state_dict())
    opt32 = optimize(ours, "fp32", input_size=(3, 224, 224))
    opt16 = optimize(ours, "bf16", input_size=(3, 224, 224))

    def run(fn, inp):
        def step():
            with torch.inference_mode():
                fn(inp)
        return step

    ceiling, n = matmul_ceiling(cpu, "bf16")
    infer = _interleaved({"torchvision eager fp32": run(tv, x),
                          "convnets eager fp32": run(ours, x),
                          "convnets.optimize fp32": run(opt32, x),
                          "convnets.optimize bf16": run(opt16, x)}, args.rounds)
    flops = count_flops("resnet50", (3, 224, 224)) * args.batch
    print(f"resnet50 inference, batch {args.batch}, 224x224, {args.rounds} interleaved rounds, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    base = infer["torchvision eager fp32"]
    for name, med in infer.items():
        print(f"  {name:24s} {med:7.3f} s/batch  images/s ratio to torchvision fp32 {base / med:.3f}")
    achieved = flops / infer["convnets.optimize bf16"] / 1e9
    print(f"  optimized bf16: {achieved:.1f} GFLOP/s of a {ceiling:.1f} GFLOP/s bf16 {n}^2 "
          f"matmul ceiling = {achieved / ceiling:.2f}")

    tv_train = torchvision.models.resnet50()
    ours_train = convnets.create_model("resnet50").to(memory_format=torch.channels_last)
    train = _interleaved({
        "torchvision fp32 loop": _step_fn(tv_train, "train", x, cpu, None),
        "convnets channels-last bf16": _step_fn(ours_train, "train", x_cl, cpu, "bf16")},
        args.rounds)
    print(f"resnet50 training step, batch {args.batch}")
    base = train["torchvision fp32 loop"]
    for name, med in train.items():
        print(f"  {name:28s} {med:7.3f} s/step  images/s ratio to torchvision fp32 {base / med:.3f}")


if __name__ == "__main__":
    main()
