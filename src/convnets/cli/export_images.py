"""``convnets export-images``: a dataset's images as PNG files, one folder per class
(:func:`convnets.data.export.export_images`)."""
from __future__ import annotations

import argparse

from .common import config_help

__all__ = ["register"]


def register(sub) -> None:
    p = sub.add_parser("export-images", help="write a dataset's images as PNG files, one folder "
                                             "per class (to try predict on)")
    p.add_argument("data", metavar="DATA", help=config_help("data"))
    p.add_argument("out", metavar="DIR", help="a new or empty folder")
    p.add_argument("--split", choices=["test", "train"], default="test",
                   help="which split (default test: images no run has trained on)")
    p.add_argument("--per-class", type=int, help="at most this many images of each class")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from ..data.export import export_images

    counts = export_images(args.data, args.out, split=args.split, per_class=args.per_class)
    print(f"wrote {sum(counts.values())} images of the {args.split} split in {len(counts)} class "
          f"folders to {args.out}")
