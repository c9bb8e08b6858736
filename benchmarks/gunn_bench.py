"""What the gradual update costs: straightforward GUNN, fast GUNN (Algorithm 1) and SUNN.

For single GUNN layers and whole models: parameters, FLOPs (torch.utils.flop_counter, one
forward and one training step), bytes saved for backward (distinct storages seen by
``saved_tensors_hooks`` during one training-mode forward) and times. Times are measured in
one process, the variants interleaved (A B C A B C ...), and reported as medians and as
ratios to SUNN at its faster memory format: on a shared machine only those are meaningful.

    python benchmarks/gunn_bench.py            # the full run recorded in RESULTS.md
    python benchmarks/gunn_bench.py --quick    # small shapes, to check the script
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from convnets import create_model
from convnets.models.gunn import GunnLayer
from convnets.perf.profile import saved_tensor_bytes

VARIANTS = ["gunn-straightforward", "gunn-fast", "gunn-fast-cl", "sunn", "sunn-cl"]


@dataclass
class Case:
    title: str
    build: Callable[[], nn.Module]       # a GunnLayer or a GunnNet, gradual
    shape: tuple[int, ...]
    model: bool
    results: dict[str, dict] = field(default_factory=dict)


@contextlib.contextmanager
def variant(module: nn.Module, name: str):
    """Run ``module`` as the variant ``name``: GUNN layers straightforward or fast, or SUNN."""
    layers = [m for m in module.modules() if isinstance(m, GunnLayer)]
    for layer in layers:
        layer.gradual = not name.startswith("sunn")
        if name == "gunn-straightforward":  # per instance, so that nothing else changes
            layer.forward = layer._gradual_reference
    try:
        yield
    finally:
        for layer in layers:
            layer.__dict__.pop("forward", None)
            layer.gradual = True


AMP: torch.dtype | None = None  # --amp bf16: every forward under CPU autocast


def loss_of(module: nn.Module, x: torch.Tensor, model: bool) -> torch.Tensor:
    with torch.autocast("cpu", dtype=AMP or torch.bfloat16, enabled=AMP is not None):
        out = module(x).float()
    if model:
        return F.cross_entropy(out, torch.zeros(len(out), dtype=torch.long, device=out.device))
    return out.square().mean()


def flops(case: Case) -> tuple[int, int]:
    """Forward and training-step FLOPs of the gradual layer/model, counted on the meta device
    (the fast and straightforward updates and SUNN do the same arithmetic; shown once)."""
    with torch.device("meta"):
        module = case.build().train()
        x = torch.zeros(case.shape, requires_grad=True)
    counter = FlopCounterMode(display=False)
    with counter:
        loss = loss_of(module, x, case.model)
    fwd = counter.get_total_flops()
    with counter:
        loss_of(module, x, case.model).backward()
    return fwd, counter.get_total_flops()


def run_case(case: Case, reps: int) -> None:
    torch.manual_seed(0)
    module = case.build()  # one set of weights; the -cl variants convert weights and input
    x_nchw = torch.randn(case.shape)
    inputs = {"nchw": x_nchw, "cl": x_nchw.contiguous(memory_format=torch.channels_last)}
    fwd, step = flops(case)
    times: dict[str, dict[str, list[float]]] = {v: {"forward": [], "step": []} for v in VARIANTS}
    for v in VARIANTS:
        fmt = "cl" if v.endswith("-cl") else "nchw"
        m = module.to(memory_format=torch.channels_last if fmt == "cl" else torch.contiguous_format)
        with variant(m, v):  # warm-up, and the saved bytes of one training-mode forward
            m.train()
            nbytes, loss = saved_tensor_bytes(lambda: loss_of(m, inputs[fmt], case.model))
            loss.backward()
            m.zero_grad(set_to_none=True)
        case.results[v] = {"saved": nbytes}
    for _ in range(reps):
        for v in VARIANTS:  # interleaved: every repetition runs every variant once
            fmt = "cl" if v.endswith("-cl") else "nchw"
            m = module.to(memory_format=torch.channels_last if fmt == "cl" else torch.contiguous_format)
            with variant(m, v):
                m.eval()
                with torch.no_grad():
                    t0 = time.perf_counter()
                    loss_of(m, inputs[fmt], case.model)
                    times[v]["forward"].append(time.perf_counter() - t0)
                m.train()
                t0 = time.perf_counter()
                loss_of(m, inputs[fmt], case.model).backward()
                times[v]["step"].append(time.perf_counter() - t0)
                m.zero_grad(set_to_none=True)
    params = sum(p.numel() for p in module.parameters())
    for v in VARIANTS:
        case.results[v].update(params=params, flops_fwd=fwd, flops_step=step,
                               forward=times[v]["forward"], step=times[v]["step"])


def report(case: Case) -> None:
    r = case.results
    base_step = min(("sunn", "sunn-cl"), key=lambda v: statistics.median(r[v]["step"]))
    base_fwd = min(("sunn", "sunn-cl"), key=lambda v: statistics.median(r[v]["forward"]))
    any_v = r[VARIANTS[0]]
    print(f"\n## {case.title}: input {'x'.join(map(str, case.shape))}")
    print(f"parameters {any_v['params']:,}; FLOPs forward {any_v['flops_fwd'] / 1e9:.2f} G, "
          f"training step {any_v['flops_step'] / 1e9:.2f} G (the same for every variant)")
    print(f"{'variant':<22} {'saved MiB':>10} {'/SUNN':>6} {'fwd s':>7} {'/best':>6} "
          f"{'step s':>7} {'/best':>6} {'paired':>7}")
    sunn_saved = r["sunn"]["saved"]
    for v in VARIANTS:
        fwd, step = statistics.median(r[v]["forward"]), statistics.median(r[v]["step"])
        # paired: the median over repetitions of (this variant / best SUNN) in the same round
        paired = statistics.median(a / b for a, b in zip(r[v]["step"], r[base_step]["step"]))
        print(f"{v:<22} {r[v]['saved'] / 2**20:>10.1f} {r[v]['saved'] / sunn_saved:>6.3f} "
              f"{fwd:>7.3f} {fwd / statistics.median(r[base_fwd]['forward']):>6.2f} "
              f"{step:>7.3f} {step / statistics.median(r[base_step]['step']):>6.2f} {paired:>7.2f}")
    print(f"(times: medians of {len(r['sunn']['step'])} interleaved repetitions; /best: ratio to "
          f"SUNN at its faster format, forward {base_fwd}, step {base_step})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions per variant")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="small shapes (a smoke test)")
    parser.add_argument("--only", help="run only the cases whose title contains this text")
    parser.add_argument("--amp", choices=["bf16"], help="mixed precision (CPU autocast)")
    args = parser.parse_args()
    global AMP
    AMP = torch.bfloat16 if args.amp else None
    torch.set_num_threads(args.threads)
    b15, b18, s18, bl18 = (4, 1, 64, 1) if args.quick else (64, 4, 112, 4)
    cases = [
        Case("GUNN-15 Conv2 layer (N=240, P=20, K=2, projection)", lambda: GunnLayer(240, 20),
             (b15, 240, 32, 32), model=False),
        Case("GUNN-18 Conv3 layer (N=800, P=20, K=2, no projection)",
             lambda: GunnLayer(800, 20, projection=False), (bl18, 800, 28, 28), model=False),
        Case("gunn15 / sunn15 model", lambda: create_model("gunn15"), (b15, 3, 32, 32), model=True),
        Case("gunn18 / sunn18 model", lambda: create_model("gunn18"), (b18, 3, s18, s18), model=True),
    ]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.amp or 'fp32'}; "
          f"training step = forward + backward of a mean-square (layers) or cross-entropy (models) loss")
    for case in cases:
        if args.only and args.only not in case.title:
            continue
        run_case(case, args.reps)
        report(case)


if __name__ == "__main__":
    main()
