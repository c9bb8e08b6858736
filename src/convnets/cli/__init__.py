"""The ``convnets`` command. It parses arguments and calls the library; nothing else.

Each command is a module of this package with ``register(subparsers)``, which adds its
parser and sets ``func`` to the function that runs it; :mod:`.targets` words the
arguments of the commands that load a network, :mod:`.common` what they all share.

Every failure a user can cause (a wrong name, size, option or path) ends in one line on
stderr and exit status 2; a traceback means a bug in convnets.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from ..errors import ConvnetsError
from . import (analyze, benchmark, bn_stats, evaluate, export, export_images, predict, serve,
               shards, train, transfer, visualize, zoo)
from .common import Interrupted, Parser, as_flags

__all__ = ["main", "build_parser"]

# In the order `convnets --help` lists them.
_REGISTER = (zoo.register, benchmark.register, train.register, evaluate.register,
             predict.register, export.register, serve.register, export_images.register,
             transfer.register, train.register_recipes, analyze.register, visualize.register,
             shards.register, bn_stats.register)


def _version() -> str:
    from .. import __version__

    return f"convnets {__version__}"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="convnets", description="Deep convolutional networks of the ImageNet era: "
                    "list and inspect models, train them with the papers' recipes, evaluate them, "
                    "ask them about images and reuse their features.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for register in _REGISTER:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        func: Callable[[argparse.Namespace], None] = args.func
        from ..allocator import keep_freed_memory

        keep_freed_memory()  # see its module: fewer page faults in every training/inference step
        func(args)
    except ConvnetsError as err:
        from ..engine.distributed import PeerFailure

        # In a data-parallel job the process that failed says why; the others, stopped
        # because of it, add nothing.
        if not isinstance(err, PeerFailure):
            rank = os.environ.get("RANK", "0") if os.environ.get("WORLD_SIZE", "1") != "1" else "0"
            where = f"(process {rank}) " if rank != "0" else ""
            print(f"convnets: error: {where}{as_flags(err)}", file=sys.stderr)
        return 2
    except Interrupted as err:
        print(f"convnets: interrupted; {err.hint}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("convnets: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `convnets models | head`
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
