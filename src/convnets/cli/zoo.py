"""``convnets models``, ``summary`` and ``info``: the registered models, their layers, and
what the literature says about them."""
from __future__ import annotations

import argparse

from .common import UserError

__all__ = ["register"]


def register(sub) -> None:
    p = sub.add_parser("models", help="list registered models with parameters, GFLOPs and published error")
    p.add_argument("pattern", nargs="?", help="glob or substring to filter names (e.g. 'gunn*', resnet)")
    p.set_defaults(func=run_models)

    p = sub.add_parser("summary", help="per-layer table: output shapes, parameters, multiply-adds")
    p.add_argument("model", help="model name (see `convnets models`)")
    p.add_argument("--input-size", help="S, HxW or CxHxW (default: the model's own)")
    p.add_argument("--depth", type=int, default=3, help="how deep into the module tree to list (default 3)")
    p.add_argument("--num-classes", type=int, help="classifier outputs (default: the model's own)")
    p.set_defaults(func=run_summary)

    p = sub.add_parser("info", help="what the literature says about a model")
    p.add_argument("model", help="model name")
    p.set_defaults(func=run_info)


def _fmt_err(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def run_models(args: argparse.Namespace) -> None:
    from ..models import list_models, model_info
    from ..perf.profile import count_flops, count_params, meta_model

    names = list_models(args.pattern)
    if not names:
        raise UserError(f"no model matches {args.pattern!r}")
    header = f"{'model':<22} {'params':>13} {'GFLOPs':>8} {'input':>11} {'dataset':>9} {'top-1':>6} {'top-5':>6}"
    print(header)
    print("-" * len(header))
    for name in names:
        info = model_info(name)
        model = meta_model(name)
        params, gflops = count_params(model), count_flops(model, info.input_size) / 1e9
        size = "x".join(map(str, info.input_size))
        print(f"{name:<22} {params:>13,} {gflops:>8.2f} {size:>11} {info.dataset:>9} "
              f"{_fmt_err(info.top1_err):>6} {_fmt_err(info.top5_err):>6}")
    print(f"\n{len(names)} models. GFLOPs = 2 x multiply-adds at the input size shown "
          "(torchvision and timm publish multiply-adds as GFLOPS); top-1/top-5: published error, %.")


def run_summary(args: argparse.Namespace) -> None:
    from ..core import parse_input_size
    from ..models import model_info
    from ..perf.profile import layer_summary

    info = model_info(args.model)
    size = parse_input_size(args.input_size, info.input_size[0]) if args.input_size else info.input_size
    if args.depth < 1:
        raise UserError("--depth must be at least 1")
    rows, params, macs = layer_summary(info.name, size, depth=args.depth,
                                       num_classes=args.num_classes or info.num_classes)
    width = max(len("layer"), *(len(r.name) for r in rows))
    header = f"{'layer':<{width}}  {'type':<16} {'output shape':<20} {'params':>12} {'mult-adds':>15}"
    print(f"{info.name}: input {'x'.join(map(str, size))}")
    print(header)
    print("-" * len(header))
    for r in rows:
        shape = "x".join(map(str, r.output_shape[1:])) if r.output_shape else "-"
        print(f"{r.name:<{width}}  {r.kind:<16} {shape:<20} {r.params:>12,} {r.macs:>15,}")
    print("-" * len(header))
    print(f"{'total':<{width}}  {'':<16} {'':<20} {params:>12,} {macs:>15,}")
    print(f"parameters: {params:,}   multiply-adds: {macs / 1e9:.3f} G   FLOPs (2 x MACs): {2 * macs / 1e9:.3f} G")


def run_info(args: argparse.Namespace) -> None:
    from ..engine.recipes import recipes_for
    from ..models import model_info

    from ..engine.protocols import get_protocol

    info = model_info(args.model)
    for key, value in info.as_dict().items():
        if key == "protocol":  # the paper's test protocol, with where it is described
            value = f"{value} (convnets eval --protocol {value}): {get_protocol(value).source}"
        if value not in (None, "", ()):
            print(f"{key:<12} {value}")
    recipes = recipes_for(info.name)
    if recipes:
        print(f"{'recipes':<12} {', '.join(r.name for r in recipes)} "
              f"(convnets train {info.name} --recipe NAME; `convnets recipes` says what each is)")
