"""``convnets benchmark``: images/s, latency and memory of a model, next to torchvision's or
timm's (:func:`convnets.perf.benchmark.benchmark`; its defaults are the flags')."""
from __future__ import annotations

import argparse

from .common import LibraryDefault, given

__all__ = ["register"]

_OPTIONS = ("mode", "batch", "input_size", "amp", "channels_last", "optimize", "compile", "compare",
            "warmup", "repeats", "device")


def _default(name: str) -> LibraryDefault:
    return LibraryDefault("convnets.perf.benchmark", "benchmark", name)


def register(sub) -> None:
    p = sub.add_parser("benchmark", help="images/s, latency, GFLOP/s and memory of a model, "
                       "side by side with torchvision/timm")
    p.add_argument("model", help="model name (see `convnets models`)")
    p.add_argument("--mode", choices=["infer", "train"], default=_default("mode"),
                   help="time inference or training steps (default %(default)s)")
    p.add_argument("--batch", type=int, default=_default("batch"), help="default %(default)s")
    p.add_argument("--input-size", help="S, HxW or CxHxW (default: the model's own)")
    p.add_argument("--amp", choices=["bf16", "fp16"], help="autocast precision (default fp32)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--optimize", action="store_true", help="ours through convnets.perf.optimize")
    p.add_argument("--compile", action="store_true", help="torch.compile both sides")
    p.add_argument("--compare", choices=["torchvision", "timm", "sunn"],
                   help="time the same network from there, interleaved (GUNN: sunn by default)")
    p.add_argument("--warmup", type=int, default=_default("warmup"),
                   help="untimed batches first (default %(default)s)")
    p.add_argument("--repeats", type=int, default=_default("repeats"),
                   help="timed batches per model (default %(default)s)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when there is one)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    import json

    from ..perf.benchmark import benchmark, format_result

    result = benchmark(args.model, **given(args, _OPTIONS))
    print(json.dumps(result.to_dict()) if args.json else format_result(result))
