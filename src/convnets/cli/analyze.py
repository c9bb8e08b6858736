"""``convnets analyze singularity``: collapsed channels and effective dimensionality per
layer (:func:`convnets.inspect.singularity.analyze_target`); this module prints its table."""
from __future__ import annotations

import argparse

from .common import Parser, UserError

__all__ = ["register"]


def register(sub) -> None:
    p = sub.add_parser("analyze", help="inspect activations: `analyze singularity` counts collapsed "
                                       "channels and effective dimensionality per layer")
    p.set_defaults(func=run, analysis=None)
    analyses = p.add_subparsers(dest="analysis", metavar="ANALYSIS", parser_class=Parser)
    q = analyses.add_parser("singularity", help="collapsed channel pairs and effective dimensionality "
                                                "(Orhan & Pitkow 2018; GUNN paper Section 4)")
    q.add_argument("model", help="model name (see `convnets models`)")
    source = q.add_mutually_exclusive_group()
    source.add_argument("--weights", help="a weights file (default: the model's initialisation)")
    source.add_argument("--run", help="a run directory: its last checkpoint and its dataset")
    q.add_argument("--data", help="dataset spec (default: the run's, else the built-in digits)")
    q.add_argument("--batches", type=int, default=4, help="test batches to analyse (default 4)")
    q.add_argument("--batch-size", type=int, default=64, help="images per batch (default 64)")
    q.add_argument("--threshold", type=float, default=0.99,
                   help="|correlation| above which two channels count as collapsed (default 0.99)")
    q.add_argument("--input-size", help="S, HxW or CxHxW (default: the model's own)")
    q.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from ..inspect.singularity import analyze_target

    if args.analysis != "singularity":
        raise UserError("choose an analysis: `convnets analyze singularity MODEL ...`")
    res = analyze_target(args.model, weights=args.weights, run=args.run, data=args.data,
                         batches=args.batches, batch_size=args.batch_size,
                         threshold=args.threshold, input_size=args.input_size)
    width = max(len("layer"), *(len(r.name) for r in res.rows))
    header = (f"{'layer':<{width}}  {'kind':<12} {'channels':>8} {'dead':>5} "
              f"{'collapsed':>9} {'of pairs':>9} {'PR':>8} {'dims99':>6}")
    source = f" ({res.weights})" if res.weights else " (initialisation)"
    print(f"{res.model}{source}, {res.batches} batch(es) of {res.data or 'digits'} test images")
    print(header)
    print("-" * len(header))
    for r in res.rows:
        print(f"{r.name:<{width}}  {r.kind:<12} {r.channels:>8} {r.dead:>5} {r.collapsed_pairs:>9} "
              f"{r.pairs:>9} {r.participation_ratio:>8.1f} {r.dims99:>6}")
    print(f"collapsed: live channel pairs with |correlation| > {res.threshold} over images and "
          "positions; PR: participation ratio of the channel covariance eigenvalues; dims99: "
          "eigenvalues holding 99% of the variance.")
