"""Every claim the project makes about CUDA, checked in one prepared run on one GPU.

The CUDA paths the code offers but the CPU-only test suite never runs: fp16 with a
gradient scaler (its state through the engine's checkpoint), GUNN's fast update and its
memory (the GUNN paper's Table 1: GUNN-15 trains at batch 64 in 2.485 GB), memory-efficient
DenseNet, ``convnets benchmark``'s CUDA peak memory, NCCL data parallelism with
``--sync-bn`` (through ``torchrun`` and ``convnets train``), and ``convnets serve`` on the
GPU. Each check has a time budget (the whole fits in 8 minutes on an H200), records
whether it passed and its figures, and a failing check does not stop the others.

Without CUDA, or with ``--smoke``, the same code runs on the CPU at tiny sizes (gloo
instead of NCCL, bf16-free fp16 on the CPU's autocast): CI runs that, to keep the script
working between the rare runs on a GPU.

    python benchmarks/gpu_check.py                       # on a GPU: JSON + a RESULTS.md section
    python benchmarks/gpu_check.py --smoke --out /tmp/g  # CPU, tiny sizes, under a minute

Outputs: ``OUT/gpu_check.json`` (every check: passed, seconds, figures, error) and
``OUT/gpu_check.md`` (the RESULTS.md section); on a GPU without ``--smoke`` the section
also replaces the one of the same title in benchmarks/RESULTS.md (``--no-results``: not).
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import nn

from convnets import create_model
from convnets.perf.machine import cpu_description
from convnets.core import autocast, first_line
from convnets.engine.checkpoint import load_checkpoint, save_checkpoint
from convnets.perf.benchmark import benchmark
from convnets.perf.profile import saved_tensor_bytes

PAPER_GUNN15_BYTES = 2.485e9  # GUNN paper, Table 1: GUNN-15 at batch 64 on CIFAR
TOTAL_BUDGET_S = 480
SECTION = "## GPU check (benchmarks/gpu_check.py)"
RESULTS_MD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")


@dataclass(frozen=True)
class Sizes:
    """The work each check does: the paper's sizes on a GPU, tiny ones for the smoke run."""

    gunn15_batch: int
    cifar_size: int
    gunn18_batch: int
    imagenet_size: int
    resnet50_batch: int
    densenet_batch: int
    warmup: int
    repeats: int
    compile: bool  # torch.compile of ResNet-50 inference (minutes on a small CPU)
    train_images: int  # synthetic images for `convnets train`


GPU = Sizes(gunn15_batch=64, cifar_size=32, gunn18_batch=32, imagenet_size=224,
            resnet50_batch=128, densenet_batch=64, warmup=3, repeats=10, compile=True,
            train_images=1024)
SMOKE = Sizes(gunn15_batch=4, cifar_size=8, gunn18_batch=2, imagenet_size=32,
              resnet50_batch=2, densenet_batch=2, warmup=1, repeats=1, compile=False,
              train_images=16)


@dataclass
class Context:
    device: torch.device
    sizes: Sizes
    work: str  # a scratch directory

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


# --- helpers -----------------------------------------------------------------------------

def _images(ctx: Context, batch: int, size: int) -> torch.Tensor:
    x = torch.randn(batch, 3, size, size, device=ctx.device)
    return x.contiguous(memory_format=torch.channels_last)


def _model(ctx: Context, name: str, **kw) -> nn.Module:
    return create_model(name, **kw).to(ctx.device, memory_format=torch.channels_last).train()


def _train_step(ctx: Context, model: nn.Module, x: torch.Tensor,
                amp: str | None = None) -> Callable[[], float]:
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    y = torch.randint(0, 10, (x.shape[0],), device=ctx.device)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        with autocast(ctx.device, amp):
            loss = nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
        return loss.item()
    return step


def _training_memory(ctx: Context, model: nn.Module, x: torch.Tensor) -> dict:
    """One training step's peak CUDA memory (bytes above what was allocated before it) or,
    on the CPU, the bytes autograd keeps for backward (the peak is not tracked there)."""
    step = _train_step(ctx, model, x)
    step()  # the optimizer's momentum buffers exist from here on, as in training
    if ctx.device.type != "cuda":
        nbytes, loss = saved_tensor_bytes(lambda: model(x).sum())
        del loss
        return {"saved_bytes": nbytes}
    ctx.sync()
    torch.cuda.reset_peak_memory_stats(ctx.device)
    base = torch.cuda.memory_allocated(ctx.device)
    step()
    ctx.sync()
    peak = torch.cuda.max_memory_allocated(ctx.device)
    return {"peak_bytes": peak, "peak_above_base_bytes": peak - base}


def _memory_figure(figures: dict) -> int:
    return figures.get("peak_bytes", figures.get("saved_bytes"))


def _race(ctx: Context, steps: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Median seconds per call of each step, the steps interleaved."""
    for fn in steps.values():
        for _ in range(ctx.sizes.warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(ctx.sizes.repeats):
        for name, fn in steps.items():
            ctx.sync()
            start = time.perf_counter()
            fn()
            ctx.sync()
            times[name].append(time.perf_counter() - start)
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


def _free(ctx: Context) -> None:
    if ctx.device.type == "cuda":
        torch.cuda.empty_cache()


def _env() -> dict:
    # Subprocesses run this checkout's code, and each takes few threads on a shared CPU.
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


# --- the checks --------------------------------------------------------------------------

def check_amp_scaler(ctx: Context) -> dict:
    """fp16 steps with the gradient scaler and bf16 steps: finite losses; the scaler's state
    saved by the engine's checkpoint and restored into a fresh scaler."""
    out: dict = {}
    x = _images(ctx, ctx.sizes.gunn15_batch, ctx.sizes.cifar_size)
    y = torch.randint(0, 10, (x.shape[0],), device=ctx.device)
    for amp in ("fp16", "bf16"):
        torch.manual_seed(0)
        model = _model(ctx, "resnet20")
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        scaler = torch.amp.GradScaler(ctx.device.type, enabled=amp == "fp16")
        losses = []
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            with autocast(ctx.device, amp):
                loss = nn.functional.cross_entropy(model(x).float(), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            losses.append(loss.item())
        run = os.path.join(ctx.work, f"amp-{amp}")
        save_checkpoint(run, model=model, epoch=1, step=3, optimizer=opt, scaler=scaler)
        fresh = torch.amp.GradScaler(ctx.device.type, enabled=amp == "fp16", init_scale=1.0)
        fresh_model = _model(ctx, "resnet20")
        fresh_opt = torch.optim.SGD(fresh_model.parameters(), lr=0.05, momentum=0.9)
        state = load_checkpoint(run, model=fresh_model, optimizer=fresh_opt, scaler=fresh,
                                restore_rng=False)
        resumed = fresh.state_dict() == scaler.state_dict()
        out[amp] = {"losses": losses, "finite": all(math.isfinite(v) for v in losses),
                    "scale": scaler.get_scale() if scaler.is_enabled() else None,
                    "scaler_resumed": resumed, "resumed_step": state.get("step")}
    out["passed"] = all(out[a]["finite"] and out[a]["scaler_resumed"] for a in ("fp16", "bf16"))
    return out


def check_gunn15_memory(ctx: Context) -> dict:
    """GUNN-15 and SUNN-15 training memory at batch 64 (Algorithm 1: the same), against the
    paper's 2.485 GB for GUNN-15 (Table 1; its Torch implementation, not ours)."""
    x = _images(ctx, ctx.sizes.gunn15_batch, ctx.sizes.cifar_size)
    figures = {}
    for name in ("gunn15", "sunn15"):
        torch.manual_seed(0)
        figures[name] = _training_memory(ctx, _model(ctx, name), x)
        _free(ctx)
    gunn, sunn = _memory_figure(figures["gunn15"]), _memory_figure(figures["sunn15"])
    out = {**figures, "gunn15_over_sunn15": gunn / sunn}
    if ctx.device.type == "cuda":
        out["gunn15_over_paper"] = gunn / PAPER_GUNN15_BYTES
    # Within 5%: the gradual layers' own outputs are kept on top (Section 3.4).
    out["passed"] = gunn / sunn <= 1.05
    return out


def check_gunn_step_time(ctx: Context) -> dict:
    """Training step GUNN-15 / SUNN-15 (batch 64, 32x32) and GUNN-18 / SUNN-18 (ImageNet
    size), interleaved, the fast gradual update on CUDA."""
    s, out = ctx.sizes, {}
    for gunn, sunn, batch, size in (("gunn15", "sunn15", s.gunn15_batch, s.cifar_size),
                                    ("gunn18", "sunn18", s.gunn18_batch, s.imagenet_size)):
        x = _images(ctx, batch, size)
        torch.manual_seed(0)
        g = _model(ctx, gunn)
        t = _model(ctx, sunn)
        t.load_state_dict(g.state_dict())
        times = _race(ctx, {gunn: _train_step(ctx, g, x), sunn: _train_step(ctx, t, x)})
        out[f"{gunn}_step_s"], out[f"{sunn}_step_s"] = times[gunn], times[sunn]
        out[f"{gunn}_over_{sunn}"] = times[gunn] / times[sunn]
        out[f"{gunn}_loss_finite"] = math.isfinite(_train_step(ctx, g, x)())
        del g, t
        _free(ctx)
    out["passed"] = out["gunn15_loss_finite"] and out["gunn18_loss_finite"]
    return out


def check_resnet50_vs_timm(ctx: Context) -> dict:
    """ResNet-50 training and inference images/s, channels last and bf16 autocast, against
    timm's resnet50 on the same device (``convnets benchmark``, which also records CUDA
    peak memory); inference also through ``convnets.optimize``, compiled where it fits."""
    s, out = ctx.sizes, {}
    common = dict(batch=s.resnet50_batch, input_size=s.imagenet_size, amp="bf16",
                  channels_last=True, compare="timm", warmup=s.warmup, repeats=s.repeats,
                  device=str(ctx.device), ceiling_size=256 if ctx.device.type == "cpu" else None)
    for mode in ("train", "infer"):
        r = benchmark("resnet50", mode=mode, **common)
        ours, theirs = r.ours, r.theirs
        out[mode] = {"images_per_s": ours.images_per_s, "timm_images_per_s": theirs.images_per_s,
                     "ratio": r.ratio, "peak_memory_bytes": ours.peak_memory_bytes,
                     "timm_peak_memory_bytes": theirs.peak_memory_bytes}
        _free(ctx)
    if s.compile:
        start = time.monotonic()
        r = benchmark("resnet50", mode="infer", optimize=True, compile=True, **common)
        out["infer_optimize_compile"] = {"images_per_s": r.ours.images_per_s, "ratio": r.ratio,
                                         "seconds_with_compile": time.monotonic() - start}
    out["passed"] = all(out[m]["images_per_s"] > 0 for m in ("train", "infer"))
    return out


def check_densenet_memory(ctx: Context) -> dict:
    """Memory-efficient DenseNet-121 (recomputed concatenation, BN, ReLU) against the plain
    one: one training step's memory."""
    x = _images(ctx, ctx.sizes.densenet_batch, ctx.sizes.imagenet_size)
    figures = {}
    for name, efficient in (("plain", False), ("memory_efficient", True)):
        torch.manual_seed(0)
        model = _model(ctx, "densenet121", memory_efficient=efficient)
        figures[name] = _training_memory(ctx, model, x)
        del model
        _free(ctx)
    ratio = _memory_figure(figures["memory_efficient"]) / _memory_figure(figures["plain"])
    return {**figures, "efficient_over_plain": ratio, "passed": ratio < 1.0}


def check_ddp_sync_bn(ctx: Context, budget_s: float) -> dict:
    """One data-parallel process with ``--sync-bn`` through torchrun and ``convnets train``:
    NCCL on a GPU, gloo on the CPU (the engine chooses by device)."""
    s = ctx.sizes
    run = os.path.join(ctx.work, "ddp-run")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1",
           "-m", "convnets", "train", "resnet20", "--data", f"synthetic:{s.train_images}",
           "--epochs", "1", "--batch-size", str(min(64, s.train_images // 2)),
           "--input-size", str(s.cifar_size), "--sync-bn", "--workers", "0",
           "--device", ctx.device.type, "--out", run]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=budget_s, env=_env(),
                          cwd=ctx.work)
    committed = os.path.exists(os.path.join(run, "checkpoint.json"))
    return {"backend": "nccl" if ctx.device.type == "cuda" else "gloo", "returncode": proc.returncode,
            "checkpoint_written": committed, "output_tail": (proc.stdout + proc.stderr)[-600:],
            "passed": proc.returncode == 0 and committed}


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (40, 40), (200, 30, 90)).save(buf, format="PNG")
    return buf.getvalue()


def check_serve(ctx: Context, budget_s: float) -> dict:
    """``convnets serve`` on the device: it starts, describes its model and classifies an
    uploaded image."""
    cmd = [sys.executable, "-m", "convnets", "serve", "resnet20", "--device", str(ctx.device),
           "--port", "0", "--log-level", "warning"]
    log_path = os.path.join(ctx.work, "serve.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=_env(), cwd=ctx.work)
    try:
        deadline = time.monotonic() + budget_s
        line = proc.stdout.readline().decode()  # "... running on http://HOST:PORT ..."
        url = next((w for w in line.split() if w.startswith("http://")), None)
        if url is None or time.monotonic() > deadline:
            with open(log_path) as f:
                return {"passed": False, "first_line": line, "log_tail": f.read()[-600:]}
        host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=max(1.0, deadline - time.monotonic()))
        conn.request("GET", "/v1/model")
        model = json.loads(conn.getresponse().read())
        start = time.perf_counter()
        conn.request("POST", "/v1/predict?topk=3", body=_png(), headers={"Content-Type": "image/png"})
        reply = conn.getresponse()
        body = json.loads(reply.read())
        latency = time.perf_counter() - start
        conn.close()
        return {"status": reply.status, "model": model.get("model"), "topk": body.get("topk"),
                "first_request_s": latency,
                "passed": reply.status == 200 and len(body.get("topk", [])) == 3}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


# (name, budget in seconds on an H200, check); a check given its budget runs a subprocess
# that is stopped when the budget is spent.
CHECKS: list[tuple[str, float, Callable]] = [
    ("amp_scaler", 30, check_amp_scaler),
    ("gunn15_memory", 30, check_gunn15_memory),
    ("gunn_step_time", 90, check_gunn_step_time),
    ("resnet50_vs_timm", 150, check_resnet50_vs_timm),
    ("densenet121_memory", 30, check_densenet_memory),
    ("ddp_sync_bn", 90, check_ddp_sync_bn),
    ("serve", 60, check_serve),
]
_TAKES_BUDGET = {check_ddp_sync_bn, check_serve}


def run_checks(ctx: Context, only: set[str] | None = None) -> dict:
    """Every check in turn, each recorded whatever the others did."""
    started, results = time.monotonic(), {}
    for name, budget, check in CHECKS:
        if only and name not in only:
            continue
        left = TOTAL_BUDGET_S - (time.monotonic() - started)
        if left < 5:
            results[name] = {"passed": False, "skipped": "the run's 8 minutes were spent"}
            continue
        start = time.monotonic()
        try:
            figures = check(ctx, min(budget, left)) if check in _TAKES_BUDGET else check(ctx)
        except Exception as err:  # recorded, and the next check runs
            figures = {"passed": False, "error": first_line(err),
                       "traceback": traceback.format_exc()[-1500:]}
        seconds = time.monotonic() - start
        results[name] = {**figures, "seconds": seconds, "budget_s": budget,
                         "over_budget": seconds > budget}
        _free(ctx)
    return results


def _machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_description()} (smoke sizes)"


def _flat(figures: dict, prefix: str = ""):
    """(dotted name, value) of every figure, lists (losses, replies) left to the JSON."""
    for key, value in figures.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}.")
        elif not isinstance(value, list):
            yield f"{prefix}{key}", value


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value).replace("|", "/")


def markdown(report: dict) -> str:
    """The RESULTS.md section: the command, the machine, and each check's figures."""
    lines = [SECTION, "", f"`{report['command']}` on {report['machine']}, torch {report['torch']}, "
             f"{report['date']}, {report['seconds']:.0f} s in all.", "",
             "| check | passed | seconds | figures |", "|---|---|---|---|"]
    for name, r in report["checks"].items():
        figures = {k: v for k, v in r.items()
                   if k not in ("passed", "seconds", "budget_s", "over_budget", "traceback",
                                "output_tail", "log_tail", "topk", "losses")}
        text = ", ".join(f"{k} {_short(v)}" for k, v in _flat(figures))
        lines.append(f"| {name} | {'yes' if r['passed'] else 'no'} | {r.get('seconds', 0):.1f} | "
                     f"{text} |")
    return "\n".join(lines) + "\n"


def replace_section(path: str, section: str) -> None:
    """``section`` in place of the one with its title in ``path`` (or appended)."""
    with open(path) as f:
        text = f.read()
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
    with open(path, "w") as f:
        f.write(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (the CPU run CI makes)")
    ap.add_argument("--device", default=None, help="default: cuda when there is one, else cpu")
    ap.add_argument("--out", default=None, help="directory for gpu_check.json and .md")
    ap.add_argument("--only", nargs="*", help="run only these checks")
    ap.add_argument("--no-results", action="store_true", help="leave benchmarks/RESULTS.md alone")
    args = ap.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    smoke = args.smoke or device.type != "cuda"
    out = args.out or (tempfile.mkdtemp(prefix="gpu_check-") if smoke else
                       os.path.dirname(os.path.abspath(__file__)))
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="gpu_check-work-")
    start = time.monotonic()
    try:
        checks = run_checks(Context(device, SMOKE if smoke else GPU, work),
                            set(args.only) if args.only else None)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {"command": "python " + " ".join(["benchmarks/gpu_check.py", *(argv or sys.argv[1:])]),
              "machine": _machine(device), "device": str(device), "smoke": smoke,
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "seconds": time.monotonic() - start, "sizes": asdict(SMOKE if smoke else GPU),
              "checks": checks, "passed": all(r["passed"] for r in checks.values())}
    with open(os.path.join(out, "gpu_check.json"), "w") as f:
        json.dump(report, f, indent=2, default=str)
    section = markdown(report)
    with open(os.path.join(out, "gpu_check.md"), "w") as f:
        f.write(section)
    if not smoke and not args.no_results:
        replace_section(RESULTS_MD, section)
    for name, r in checks.items():
        print(f"{name:20s} {'pass' if r['passed'] else 'FAIL'} {r.get('seconds', 0):6.1f} s"
              + (f"  {r['error']}" if "error" in r else ""))
    print(f"{'all' if report['passed'] else 'not all'} passed in {report['seconds']:.0f} s; "
          f"{os.path.join(out, 'gpu_check.json')}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
