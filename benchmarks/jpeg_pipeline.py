"""Images/s of the ImageFolder JPEG training pipeline in one process (num_workers=0).

Writes ``--images`` real JPEGs of ImageNet-like sizes (about 500x375, smooth noise so
that the files are of realistic size) into a temporary ImageFolder and times, on the
same files, one pass of:

- ``ours``: ``open_dataset("folder:DIR", "train", train_transform=True)`` as the
  training engine uses it: ``load_rgb_tensor`` (the header read by PIL for the
  pixel-limit, EXIF-orientation and colour-mode checks, then TorchCodec's libjpeg-turbo
  straight into a uint8 tensor; bad-file skipping) + the ``imagenet`` preset
  (RandomResizedCrop 224 bilinear, flip, to float, normalise);
- ``timm``: torchvision ``ImageFolder`` with ``timm.data.create_transform(224,
  is_training=True)`` (PIL decode, RandomResizedCropAndInterpolation, flip, colour
  jitter 0.4, normalise); ``timm-nojit``: the same without the colour jitter, which
  the ``imagenet`` preset does not apply either;
- ``bare``: the least a loader can do: TorchCodec's ``decode_jpeg`` on the file's bytes
  with no checks at all + the same v2 RandomResizedCrop/flip/normalise on the tensor.

The variants alternate (A B C A B C ...) ``--reps`` times; medians and ratios to ``ours``.

    PYTHONPATH=src python benchmarks/jpeg_pipeline.py --images 600 --reps 7
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import torch
from PIL import Image


def write_jpegs(root: str, n: int, classes: int = 4, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    sizes = [(500, 375), (375, 500), (500, 333), (640, 480), (500, 400)]
    for i in range(n):
        w, h = sizes[i % len(sizes)]
        # Smooth noise: a coarse random field upsampled, plus fine grain, so that the
        # JPEGs are tens of kilobytes like photographs, not a few hundred bytes.
        coarse = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
        big = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), dtype=np.int16)
        big = np.clip(big + rng.integers(-20, 21, big.shape), 0, 255).astype(np.uint8)
        d = os.path.join(root, f"class{i % classes}")
        os.makedirs(d, exist_ok=True)
        Image.fromarray(big).save(os.path.join(d, f"img{i:04d}.jpg"), quality=90)


def bare_dataset(root: str):
    from torchcodec.decoders import decode_jpeg
    from torchvision import datasets
    from torchvision.io import read_file
    from torchvision.transforms import v2

    from convnets.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    tf = v2.Compose([v2.RandomResizedCrop((224, 224), antialias=True), v2.RandomHorizontalFlip(),
                     v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def loader(path):
        return decode_jpeg(read_file(path), mode="RGB")

    return datasets.ImageFolder(root, transform=tf, loader=loader)


def timm_dataset(root: str, color_jitter: float | None = 0.4):
    import timm.data
    from torchvision import datasets

    tf = timm.data.create_transform(224, is_training=True, color_jitter=color_jitter)
    return datasets.ImageFolder(root, transform=tf)


def ours_dataset(root: str):
    from convnets.data import open_dataset

    return open_dataset(f"folder:{root}", "train", input_size=(3, 224, 224), train_transform=True)


def one_pass(ds, batch_size: int) -> float:
    from torch.utils.data import DataLoader

    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=0)
    start = time.perf_counter()
    n = 0
    for x, _ in loader:
        assert x.shape[1:] == (3, 224, 224) and x.dtype == torch.float32
        n += len(x)
    return n / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=600)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as root:
        write_jpegs(root, args.images)
        sizes = [os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs]
        print(f"{len(sizes)} JPEGs, median {statistics.median(sizes) / 1024:.0f} KiB; "
              f"one process, {args.threads} torch thread(s), batch {args.batch_size}")
        variants = {"ours": ours_dataset(root), "timm": timm_dataset(root),
                    "timm-nojit": timm_dataset(root, None),
                    "bare": bare_dataset(root)}
        print("ours uses", len(variants["ours"]), "of the files (its train split)")
        rates: dict[str, list[float]] = {k: [] for k in variants}
        for ds in variants.values():  # warm-up
            one_pass(ds, args.batch_size)
        for r in range(args.reps):
            for k, ds in variants.items():
                rates[k].append(one_pass(ds, args.batch_size))
            print(f"rep {r + 1}: " + "  ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items()),
                  flush=True)
        base = statistics.median(rates["ours"])
        for k, v in rates.items():
            paired = statistics.median(a / b for a, b in zip(v, rates["ours"]))
            print(f"{k:10s} median {statistics.median(v):7.1f} images/s  /ours "
                  f"{statistics.median(v) / base:.3f} (paired {paired:.3f})")


if __name__ == "__main__":
    main()
