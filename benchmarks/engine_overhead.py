"""What the training engine costs on top of a hand-written PyTorch loop.

Both sides train the same model (resnet20, 10 classes, 32x32) on the same in-memory
tensors with the same SGD settings, batch size and precision (fp32, CPU), and both
evaluate the same test tensors once per epoch. The engine side is the whole of
``convnets.engine.train.fit``: its DistributedSampler loader, per-step loss/error sums
and NaN checks, LR schedule, per-epoch evaluation with top-1/top-5, metrics.jsonl,
TensorBoard scalars (when tensorboard is installed), the atomic per-epoch checkpoint,
the inference spec and the curves plot. The hand loop is the minimum a person writes:
shuffle, forward, loss, backward, step, and an eval pass.

Timing: each rep is a pair of whole fresh runs of ``--epochs`` epochs, engine then hand
loop in odd reps and hand loop then engine in even reps (A B B A ...), so that a drift of
the machine's speed during the benchmark falls on both sides alike; the ratio of the
medians is reported, and the median of the paired ratios. Each line also shows the
process's minor page faults during the run (``getrusage``), since freeing and
re-allocating large tensors costs the kernel page zeroing on both sides. The engine keeps
freed memory for reuse (``convnets.allocator``); that setting is process-wide, so the
script applies it before the first run and both sides run under it; with
``CONVNETS_MALLOC=system`` both run under glibc's defaults.

    PYTHONPATH=src python benchmarks/engine_overhead.py --reps 5
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time

import torch
from torch import nn
from torch.utils.data import TensorDataset


def make_data(n_train: int, n_test: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + n_test, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (n_train + n_test,), generator=g)
    return (TensorDataset(x[:n_train], y[:n_train]), TensorDataset(x[n_train:], y[n_train:]))


def run_engine(cfg, train, test) -> float:
    from convnets.engine.train import fit

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        fit(cfg, os.path.join(tmp, "run"), datasets=(train, test), log=lambda s: None,
            progress=False)
        return time.perf_counter() - start


def run_hand(cfg, train, test) -> float:
    from convnets.models import create_model

    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
    crit = nn.CrossEntropyLoss()
    xs, ys = train.tensors
    xt, yt = test.tensors
    bs = cfg.batch_size
    for _ in range(cfg.epochs):
        model.train()
        perm = torch.randperm(len(xs))
        for i in range(0, len(xs) - bs + 1, bs):  # drop_last, as the engine's train loader
            idx = perm[i:i + bs]
            loss = crit(model(xs[idx]), ys[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        errors = 0
        with torch.no_grad():
            for i in range(0, len(xt), bs):
                errors += int((model(xt[i:i + bs]).argmax(1) != yt[i:i + bs]).sum())
    return time.perf_counter() - start


def per_epoch_costs(reps: int = 7) -> None:
    """Time the two per-epoch writes of the engine on their own: the atomic checkpoint
    of resnet20 (weights, SGD momentum, scheduler, RNG states) and the metrics file."""
    from convnets.engine import checkpoint as ckpt
    from convnets.engine import logs
    from convnets.models import create_model

    model = create_model("resnet20", num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(8, 3, 32, 32)).sum().backward()
    opt.step()  # so that the optimizer holds its momentum buffers
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    save, write, history = [], [], []
    with tempfile.TemporaryDirectory() as d:
        for e in range(1, reps + 1):
            t = time.perf_counter()
            ckpt.save_checkpoint(d, model=model, epoch=e, step=8 * e, optimizer=opt,
                                 scheduler=sched, scaler=None, ema=None, rng=[ckpt.rng_state()])
            save.append(time.perf_counter() - t)
            history.append({"epoch": e, "lr": 0.1, "train_loss": 1.0, "train_top1_err": 50.0,
                            "test_loss": 1.0, "test_top1_err": 50.0, "test_top5_err": 10.0})
            t = time.perf_counter()
            logs.with_best(history)
            logs.write_history(os.path.join(d, "metrics.jsonl"), history)
            write.append(time.perf_counter() - t)
    print(f"per epoch: save_checkpoint median {1000 * statistics.median(save):.1f} ms, "
          f"metrics.jsonl write median {1000 * statistics.median(write):.2f} ms ({reps} epochs)")


def main() -> None:
    from convnets.engine.config import TrainConfig

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train", type=int, default=1024)
    p.add_argument("--test", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--per-epoch-only", action="store_true",
                   help="only time the per-epoch checkpoint and metrics writes")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from convnets.allocator import keep_freed_memory

    print(f"malloc: keep_freed_memory() -> {keep_freed_memory()} (both sides)")
    per_epoch_costs()
    if args.per_epoch_only:
        return
    train, test = make_data(args.train, args.test)
    cfg = TrainConfig(model="resnet20", epochs=args.epochs, batch_size=args.batch_size,
                      workers=0, device="cpu", input_size=[3, 32, 32])
    print(f"resnet20, {args.train} train / {args.test} test images 3x32x32 in memory, batch "
          f"{args.batch_size}, {args.epochs} epochs per run, fp32 CPU, {args.threads} threads")
    run_hand(cfg, train, test)  # warm-up: imports, allocator, kernels
    run_engine(cfg, train, test)
    eng, hand = [], []

    def timed(run):
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        seconds = run(cfg, train, test)
        return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults

    for r in range(args.reps):
        order = (run_engine, run_hand) if r % 2 == 0 else (run_hand, run_engine)
        got = {run: timed(run) for run in order}
        (e, e_faults), (h, h_faults) = got[run_engine], got[run_hand]
        eng.append(e)
        hand.append(h)
        print(f"rep {r + 1} ({'engine first' if r % 2 == 0 else 'hand loop first'}): engine "
              f"{e:.3f} s ({e_faults} faults)  hand loop {h:.3f} s ({h_faults} faults)  "
              f"ratio {e / h:.3f}", flush=True)
    me, mh = statistics.median(eng), statistics.median(hand)
    paired = statistics.median(e / h for e, h in zip(eng, hand))
    print(f"median engine {me:.3f} s, hand loop {mh:.3f} s; engine/hand {me / mh:.3f} "
          f"(median of paired ratios {paired:.3f}); overhead {100 * (me / mh - 1):+.1f}%")


if __name__ == "__main__":
    main()
