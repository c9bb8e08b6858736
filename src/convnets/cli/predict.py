"""``convnets predict``: the top classes of image files and folders for a run, weights file,
model or ONNX file (:class:`convnets.inference.predict.Predictor`)."""
from __future__ import annotations

import argparse
import os
import sys

from .common import error_line
from .targets import add_target_arguments, note_untrained

__all__ = ["register"]


def register(sub) -> None:
    p = sub.add_parser("predict", help="top-k classes of images (files or folders) for a run, "
                                       "weights file or model")
    add_target_arguments(p, ema="use")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR",
                   help="image files, or folders (every image in them, recursively)")
    p.add_argument("--topk", type=int, default=5, help="classes per image (default 5)")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    p.add_argument("--workers", type=int, default=0, help="image-decoding processes (default 0)")
    p.set_defaults(func=run)


def _print_top(pred, out) -> None:
    top = ", ".join(f"{name} {100 * p:.1f}%" for name, p in zip(pred.classes, pred.probabilities))
    print(f"{pred.source}: {top}", file=out)


def run(args: argparse.Namespace) -> None:
    import json

    from tqdm import tqdm

    from ..errors import DataError
    from ..inference.predict import Predictor, find_images

    # A run directory, weights file or model name runs on PyTorch; an .onnx file written by
    # `convnets export` on ONNX Runtime (Predictor.from_target chooses the backend).
    predictor = Predictor.from_target(args.target, model=args.model, device=args.device,
                                      ema=args.ema)
    note_untrained(predictor, "these are the predictions of")
    inputs, empty = [], 0
    for path in args.images:  # a folder with no images is one error; the others still run
        try:
            inputs += find_images(path) if os.path.isdir(path) else [path]
        except DataError as err:
            error_line(err)
            empty += 1
    failed = empty
    bar = tqdm(total=len(inputs), unit="img", disable=not sys.stderr.isatty(), leave=False,
               dynamic_ncols=True)
    for pred in predictor.iter_predictions(inputs, args.topk, batch_size=args.batch_size,
                                           keep_going=True, workers=args.workers):
        bar.update(1)
        if pred.error is not None:
            failed += 1
            with bar.external_write_mode():
                error_line(pred.error)
            continue
        with bar.external_write_mode():
            if args.json:
                print(json.dumps(pred.as_dict()))
            else:
                _print_top(pred, sys.stdout)
    bar.close()
    if failed:
        raise DataError(f"{failed} of {len(inputs) + empty} inputs could not be predicted")
