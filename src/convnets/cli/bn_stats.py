"""``convnets reestimate-bn``: batch-norm statistics recomputed on training images, written
as new weights beside the checkpoint's (:func:`convnets.engine.bn_stats.reestimate_target`)."""
from __future__ import annotations

import argparse

from .common import config_help
from .targets import add_target_arguments

__all__ = ["register"]


def register(sub) -> None:
    p = sub.add_parser("reestimate-bn", help="recompute batch-norm statistics on training images "
                                             "(DPN, Caffe ResNet); writes new weights, keeps the "
                                             "checkpoint")
    add_target_arguments(p, ema="re-estimate")
    p.add_argument("--data", help="dataset spec (default: the run's); its training split is read")
    p.add_argument("--batches", type=int, default=100,
                   help="how many batches of training images (default 100)")
    p.add_argument("--batch-size", type=int, help=config_help("batch_size"))
    p.add_argument("--augment", action="store_true",
                   help="the training augmentation's images (default: the evaluation preset's)")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--out", help="the weights file to write (default: beside the weights read, "
                                 "NAME-bn.safetensors)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from ..engine.bn_stats import reestimate_target
    from .common import UserError

    if args.batches < 1:
        raise UserError("--batches must be at least 1")
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    res = reestimate_target(args.target, data=args.data, model=args.model, ema=args.ema,
                            batches=args.batches, batch_size=args.batch_size,
                            augment=args.augment, workers=args.workers, device=args.device,
                            out=args.out)
    print(f"re-estimated the batch-norm statistics of {res['source']} on {res['images']} "
          f"training images; wrote {res['weights']} (evaluate it: convnets eval {res['weights']})")
