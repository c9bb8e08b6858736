"""``convnets shards SPEC OUT``: write a data set as shards (:mod:`convnets.data.shards`)."""
from __future__ import annotations

import argparse
import re
import sys

from .common import UserError

__all__ = ["register"]

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20,
          "GIB": 2**30}


def _size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).upper() not in _UNITS or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a size such as 256MB, got {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def register(sub) -> None:
    p = sub.add_parser("shards", help="write a data set's train and test splits as tar shards "
                                      "for `--data shards:DIR`")
    p.add_argument("spec", metavar="SPEC", help="the data, as --data names it (imagenet:DIR, "
                                                "folder:DIR, cifar10:DIR, digits, ...)")
    p.add_argument("out", metavar="OUT", help="the new folder to write")
    p.add_argument("--shard-size", type=_size, default=_size("256MB"),
                   help="bytes per shard (default 256MB)")
    p.add_argument("--workers", type=int, default=4, metavar="N",
                   help="threads that read and check the images (default 4)")
    p.set_defaults(func=run_shards)


def run_shards(args: argparse.Namespace) -> None:
    from ..data.shards import write_shards

    if args.spec.startswith("shards:"):
        raise UserError("SPEC is already shards")
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    index = write_shards(args.spec, args.out, shard_bytes=args.shard_size, workers=args.workers,
                         progress=sys.stderr.isatty())
    for name, split in index["splits"].items():
        print(f"{name}: {len(split['samples'])} images in {len(split['shards'])} shard(s)")
    print(f"wrote {args.out}; train with --data shards:{args.out}")
