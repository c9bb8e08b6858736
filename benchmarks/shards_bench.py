"""Shards against image folders: shuffle quality of the candidate libraries, images/s of
the JPEG training pipeline from shards and from the folder on the same images (1 and 2
workers, interleaved rounds), and the cost of a checkpoint within an epoch.

    PYTHONPATH=src python benchmarks/shards_bench.py [--classes 100 --per-class 100]

Shuffle quality: the data is written in label order (as a folder of class folders is),
and the statistic is over the first N samples an epoch delivers: the mean and longest
run of one class, and the number of classes in the first 1 % of them. A full random
permutation is the reference. Libraries that are not installed are reported as such.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch


def runs(labels: list[int]) -> tuple[float, int, int]:
    lengths, k = [], 1
    for a, b in zip(labels, labels[1:]):
        if a == b:
            k += 1
        else:
            lengths.append(k)
            k = 1
    lengths.append(k)
    return statistics.mean(lengths), max(lengths), len(set(labels[: max(1, len(labels) // 100)]))


def order_convnets(labels, seed=0):
    from convnets.engine.distributed import DistEnv, EpochOrder

    order = EpochOrder(len(labels), DistEnv(), shuffle=True, seed=seed, global_batch=1)
    return [labels[i] for i in order.global_order()]


def order_webdataset(labels, root, per_shard, buffer):
    import io
    import tarfile

    import webdataset as wds

    names = []
    for s in range(0, len(labels), per_shard):
        name = os.path.join(root, f"wds-{s // per_shard:05d}.tar")
        with tarfile.open(name, "w") as tar:
            for i in range(s, min(s + per_shard, len(labels))):
                data = str(labels[i]).encode()
                info = tarfile.TarInfo(f"{i:08d}.cls")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        names.append(name)
    ds = wds.WebDataset(names, shardshuffle=len(names), seed=0).shuffle(buffer, initial=buffer)
    return [int(s["cls"]) for s in ds]


def order_streaming(labels, root, per_shard):
    from streaming import MDSWriter, StreamingDataset

    out = os.path.join(root, "mds")
    with MDSWriter(out=out, columns={"y": "int"}, size_limit=per_shard * 40) as w:
        for y in labels:
            w.write({"y": int(y)})
    ds = StreamingDataset(local=out, shuffle=True, shuffle_seed=0, batch_size=1)
    return [int(s["y"]) for s in ds]


def _lit_item(i, labels):
    return {"y": int(labels[i])}


def order_litdata(labels, root, per_shard):
    import functools

    import litdata

    out = os.path.join(root, "lit")
    litdata.optimize(fn=functools.partial(_lit_item, labels=labels), inputs=list(range(len(labels))),
                     output_dir=out, chunk_size=per_shard, num_workers=1, verbose=False)
    ds = litdata.StreamingDataset(out, shuffle=True, seed=0)
    return [int(s["y"]) for s in ds]


def shuffle_quality(classes, per_class, per_shard, first):
    labels = [c for c in range(classes) for _ in range(per_class)]
    rng = np.random.default_rng(0)
    rows = [("random permutation", lambda root: rng.permutation(labels).tolist()),
            ("convnets shards (EpochOrder)", lambda root: order_convnets(labels)),
            ("webdataset, shard shuffle + buffer 1000", lambda root: order_webdataset(labels, root, per_shard, 1000)),
            ("webdataset, shard shuffle + buffer 8192", lambda root: order_webdataset(labels, root, per_shard, 8192)),
            ("streaming-community (py1e)", lambda root: order_streaming(labels, root, per_shard)),
            ("litdata", lambda root: order_litdata(labels, root, per_shard))]
    print(f"shuffle quality: {classes} classes x {per_class}, written in label order, "
          f"{per_shard} samples per shard; the first {first} samples of epoch 0")
    print("| order | mean run of one class | longest run | classes in the first 1 % |")
    print("|---|---|---|---|")
    for name, make in rows:
        with tempfile.TemporaryDirectory() as root:
            try:
                got = make(root)
            except Exception as err:  # a library that is missing or fails: say so
                print(f"| {name} | failed: {type(err).__name__}: {str(err).splitlines()[0][:80]} | | |")
                continue
        mean, longest, seen = runs(got[:first])
        print(f"| {name} | {mean:.3f} | {longest} | {seen} of {classes} |")


def _jpegs(root, n, classes, side):
    from PIL import Image

    g = np.random.default_rng(0)
    for i in range(n):
        folder = os.path.join(root, f"c{i % classes}")
        os.makedirs(folder, exist_ok=True)
        smooth = g.integers(0, 255, (side // 8, side // 8, 3), dtype=np.uint8)
        img = Image.fromarray(smooth).resize((side * 4 // 3, side), Image.BILINEAR)
        img.save(os.path.join(folder, f"{i}.jpg"), quality=90)


def throughput(n, rounds, size):
    from torch.utils.data import DataLoader

    from convnets.data import open_dataset
    from convnets.data.shards import write_shards

    with tempfile.TemporaryDirectory() as root:
        images = os.path.join(root, "images")
        _jpegs(images, n, 10, 375)
        write_shards(images, os.path.join(root, "shards"), log=lambda _: None)
        specs = {"folder": images, "shards": f"shards:{os.path.join(root, 'shards')}"}
        kw = dict(input_size=(3, size, size), train_transform=True)
        times = {(s, w): [] for s in specs for w in (1, 2)}
        for _ in range(rounds):  # interleaved: the machine's load falls on all alike
            for (spec, workers), got in times.items():
                ds = open_dataset(specs[spec], "train", **kw)
                loader = DataLoader(ds, batch_size=32, num_workers=workers, shuffle=True)
                start = time.perf_counter()
                count = sum(len(y) for _, y in loader)
                got.append(count / (time.perf_counter() - start))
        print(f"\nJPEG training pipeline (imagenet preset, {size}x{size} crops of 500x375 JPEGs, "
              f"{n} images, batch 32; median of {rounds} interleaved rounds)")
        print("| workers | folder img/s | shards img/s | shards / folder |")
        print("|---|---|---|---|")
        for w in (1, 2):
            f, s = statistics.median(times["folder", w]), statistics.median(times["shards", w])
            print(f"| {w} | {f:.0f} | {s:.0f} | {s / f:.2f} |")


def checkpoint_cost(model_name, batch, size, steps):
    from convnets.engine import checkpoint as ckpt
    from convnets.models import create_model

    model = create_model(model_name, num_classes=1000)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 1000, (batch,))
    step_s, save_s = [], []
    with tempfile.TemporaryDirectory() as run:
        for k in range(steps):  # interleaved: a step, then a checkpoint
            start = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            ckpt.save_checkpoint(run, model=model, epoch=0, step=k + 1, optimizer=opt,
                                 position=(k + 1) * batch)
            save_s.append(time.perf_counter() - start)
    step, save = statistics.median(step_s[1:]), statistics.median(save_s[1:])
    print(f"\ncheckpoint within an epoch: {model_name}, CPU step at batch {batch}, {size}x{size}; "
          f"median of {steps - 1}")
    print(f"| training step | checkpoint (weights + momentum, fsync'd) | checkpoint / step |")
    print("|---|---|---|")
    print(f"| {step * 1000:.0f} ms | {save * 1000:.0f} ms | {save / step:.2f} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--per-class", type=int, default=300)
    p.add_argument("--first", type=int, default=10_000)
    p.add_argument("--per-shard", type=int, default=1000)
    p.add_argument("--images", type=int, default=320)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--model", default="resnet18")
    p.add_argument("--only", choices=("shuffle", "throughput", "checkpoint"))
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, (os.cpu_count() or 1)))
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, {os.cpu_count()} CPUs")
    if args.only in (None, "shuffle"):
        shuffle_quality(args.classes, args.per_class, args.per_shard, args.first)
    if args.only in (None, "throughput"):
        throughput(args.images, args.rounds, args.size)
    if args.only in (None, "checkpoint"):
        checkpoint_cost(args.model, 32, args.size, 6)


if __name__ == "__main__":
    main()
