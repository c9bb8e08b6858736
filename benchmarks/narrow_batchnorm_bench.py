"""Training-mode batch norm of a (rows, C) float32 matrix on CPU, forward + backward, per
element: PyTorch's native kernels at 1 and 2 threads, and at 2 threads the same kernels on
the view of whole cache lines that ``convnets.models.narrow_batchnorm`` uses.

    PYTHONPATH=src python benchmarks/narrow_batchnorm_bench.py       # 65536 rows (GUNN-15, batch 64)
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from convnets.models import narrow_batchnorm as nb
from convnets.perf.machine import cpu_description


def _native(x, g, w, b, rm, rv):
    _, mean, invstd = torch.native_batch_norm(x, w, b, rm, rv, True, 0.1, 1e-5)
    torch.ops.aten.native_batch_norm_backward(g, x, w, rm, rv, mean, invstd, True, 1e-5, [True] * 3)


def _narrow(x, g, w, b, rm, rv):
    k = nb.fold_factor(x)
    if k == 1:
        return _native(x, g, w, b, rm, rv)
    _, mean, invstd = nb.forward(x, w, b, rm, rv, 0.1, 1e-5, k)
    nb.backward(g, x, w, mean, invstd, 1e-5, k)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=65536)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    print(f"{cpu_description()}, torch {torch.__version__}, {args.rows} rows, float32, "
          f"median of {args.repeats}; ns per element, forward + backward")
    print(f"{'C':>4s} {'bytes a row':>11s} {'native 1 thread':>16s} {'native 2 threads':>17s} {'whole lines 2 threads':>22s}")
    for c in (12, 16, 24, 32, 36, 40, 48, 64):
        x = torch.randn(args.rows, c) * 2 + 1
        g = torch.randn(args.rows, c)
        w, b = torch.rand(c) + 0.5, torch.randn(c)
        row = []
        for threads, fn in ((1, _native), (2, _native), (2, _narrow)):
            torch.set_num_threads(threads)
            times = []
            for _ in range(args.repeats + 1):
                start = time.perf_counter()
                fn(x, g, w, b, torch.zeros(c), torch.ones(c))
                times.append(time.perf_counter() - start)
            row.append(statistics.median(times[1:]) * 1e9 / x.numel())
        print(f"{c:4d} {4 * c:11d} {row[0]:16.2f} {row[1]:17.2f} {row[2]:22.2f}")


if __name__ == "__main__":
    main()
