"""What ``--sync-bn``'s batch norm costs in computation: a training step with plain batch norm
vs the same step through the synchronised path, for GUNN's fast update, memory-efficient
DenseNet and a ResNet.

One process has nothing to synchronise with, so SyncBatchNorm2d normally *is* BatchNorm2d
there. To time the synchronised path itself, the script joins a gloo group of one process
and makes the converted layers take that path anyway: every all-reduce is issued (one rank,
so nothing travels), and the figure is the extra computation plus the per-call cost of the
collectives, without transfer time. Times are measured in one process, the two variants
interleaved (A B A B ...), and reported as medians and as the median of the per-round ratio.

    python benchmarks/sync_bn_bench.py --reps 7
    python benchmarks/sync_bn_bench.py --quick    # small shapes, to check the script
"""
from __future__ import annotations

import argparse
import copy
import os
import socket
import statistics
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from convnets import create_model
from convnets.engine.distributed import convert_sync_batchnorm
from convnets.models import batchnorm, gunn
from convnets.models.gunn import GunnLayer


def _force_sync_path() -> None:
    """Synchronise every SyncBatchNorm2d in training over the (one-process) world group."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)

    def forced(bn: nn.Module):
        synced = isinstance(bn, batchnorm.SyncBatchNorm2d) and bn.training
        return dist.group.WORLD if synced else None

    batchnorm.sync_group = gunn.sync_group = forced


def _step(model: nn.Module, x: torch.Tensor, layer: bool) -> float:
    start = time.perf_counter()
    out = model(x)
    if layer:
        out.square().mean().backward()
    else:
        F.cross_entropy(out, torch.zeros(len(out), dtype=torch.long)).backward()
    return time.perf_counter() - start


def measure(title: str, build, shape: tuple[int, ...], reps: int, layer: bool = False) -> None:
    torch.manual_seed(0)
    plain = build().train()
    synced = convert_sync_batchnorm(copy.deepcopy(plain))
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    times: dict[str, list[float]] = {"plain": [], "sync": []}
    for r in range(reps + 1):  # the first round warms up and is dropped
        for name, model in (("plain", plain), ("sync", synced)):
            model.zero_grad(set_to_none=True)
            t = _step(model, x, layer)
            if r:
                times[name].append(t)
    ratio = statistics.median(s / p for p, s in zip(times["plain"], times["sync"]))
    p, s = statistics.median(times["plain"]), statistics.median(times["sync"])
    print(f"{title:<44} {'x'.join(map(str, shape)):>16}  plain {p:7.3f} s  sync {s:7.3f} s  "
          f"sync/plain {s / p:5.2f}  paired {ratio:5.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    _force_sync_path()
    b, side = (4, 8) if args.quick else (32, 32)
    print(f"training step (forward + backward), {args.reps} interleaved rounds, "
          f"{args.threads} threads, channels-last input")
    measure("GUNN-15 Conv2 layer (N=240, P=20), fast", lambda: GunnLayer(240, 20),
            (b, 240, side // 2, side // 2), args.reps, layer=True)
    measure("gunn15", lambda: create_model("gunn15"), (b, 3, side, side), args.reps)
    measure("densenet_bc100_k12, memory-efficient",
            lambda: create_model("densenet_bc100_k12", memory_efficient=True), (b, 3, side, side),
            args.reps)
    measure("resnet20", lambda: create_model("resnet20"), (b, 3, side, side), args.reps)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
