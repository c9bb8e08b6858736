"""The ``convnets`` command. It parses arguments and calls the library; nothing else.

Every failure a user can cause (a wrong name, size, option or path) ends in one line on
stderr and exit status 2; a traceback means a bug in convnets.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

__all__ = ["main", "build_parser"]


class UserError(Exception):
    """A problem with the user's input, reported as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        raise UserError(f"{message} (see `{self.prog} --help`)")


# --- subcommands -----------------------------------------------------------------------

def _fmt_err(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def cmd_models(args: argparse.Namespace) -> None:
    from .models import list_models, model_info
    from .perf.profile import count_flops, count_params, _meta_model

    names = list_models(args.pattern)
    if not names:
        raise UserError(f"no model matches {args.pattern!r}")
    header = f"{'model':<22} {'params':>13} {'GFLOPs':>8} {'input':>11} {'dataset':>9} {'top-1':>6} {'top-5':>6}"
    print(header)
    print("-" * len(header))
    for name in names:
        info = model_info(name)
        model = _meta_model(name)
        params, gflops = count_params(model), count_flops(model, info.input_size) / 1e9
        size = "x".join(map(str, info.input_size))
        print(f"{name:<22} {params:>13,} {gflops:>8.2f} {size:>11} {info.dataset:>9} "
              f"{_fmt_err(info.top1):>6} {_fmt_err(info.top5):>6}")
    print(f"\n{len(names)} models. GFLOPs = 2 x multiply-adds at the input size shown "
          "(torchvision and timm publish multiply-adds as GFLOPS); top-1/top-5: published error, %.")


def cmd_summary(args: argparse.Namespace) -> None:
    from .models import model_info
    from .perf.profile import layer_summary, parse_input_size

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


def cmd_info(args: argparse.Namespace) -> None:
    from .models import model_info

    for key, value in model_info(args.model).as_dict().items():
        if value not in (None, "", ()):
            print(f"{key:<12} {value}")


# --- parser ----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="convnets", description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("models", help="list registered models with parameters, GFLOPs and published error")
    p.add_argument("pattern", nargs="?", help="glob or substring to filter names (e.g. 'gunn*', resnet)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("summary", help="per-layer table: output shapes, parameters, multiply-adds")
    p.add_argument("model", help="model name (see `convnets models`)")
    p.add_argument("--input-size", help="S, HxW or CxHxW (default: the model's own)")
    p.add_argument("--depth", type=int, default=3, help="how deep into the module tree to list (default 3)")
    p.add_argument("--num-classes", type=int, help="classifier outputs (default: the model's own)")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("info", help="what the literature says about a model")
    p.add_argument("model", help="model name")
    p.set_defaults(func=cmd_info)
    return parser


def _version() -> str:
    from . import __version__

    return f"convnets {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    from .models.registry import UnknownModelError, WeightsError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        func: Callable[[argparse.Namespace], None] = args.func
        func(args)
    except (UserError, UnknownModelError, WeightsError, ValueError, FileNotFoundError,
            NotADirectoryError, PermissionError) as err:
        print(f"convnets: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("convnets: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `convnets models | head`
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
