"""``convnets export``: a run, weights file or model as an ONNX file
(:func:`convnets.inference.export.export_onnx`)."""
from __future__ import annotations

import argparse

from ..inference.export import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from .targets import add_target_arguments, note_untrained

__all__ = ["register"]


def register(sub) -> None:
    p = sub.add_parser("export", help="write a run, weights file or model as an ONNX file that "
                                      "`predict` (and ONNX Runtime) can run")
    add_target_arguments(p, ema="export", device=False)
    p.add_argument("--onnx", required=True, metavar="PATH", help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset, {MIN_OPSET} to {MAX_OPSET} (default {DEFAULT_OPSET})")
    p.add_argument("--input-size", type=int, metavar="S",
                   help="height and width of the input (default: the run's or the model's)")
    p.add_argument("--force", action="store_true", help="replace PATH if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from ..inference.export import export_onnx

    predictor = export_onnx(args.target, args.onnx, opset=args.opset, input_size=args.input_size,
                            model=args.model, ema=args.ema, force=args.force)
    note_untrained(predictor, "exporting")
    c, h, w = predictor.input_size if args.input_size is None else (predictor.input_size[0],
                                                                    args.input_size, args.input_size)
    print(f"wrote {args.onnx}: {predictor.model_name}, input (batch, {c}, {h}, {w}), "
          f"{len(predictor.classes)} classes, opset {args.opset}")
