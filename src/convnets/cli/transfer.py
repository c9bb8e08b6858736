"""``convnets transfer``: a linear classifier on a network's frozen features from N images
per class, against training from scratch (:func:`convnets.inference.transfer.transfer`)."""
from __future__ import annotations

import argparse

from .common import LibraryDefault, config_help, given, note
from .targets import add_target_arguments

__all__ = ["register"]


def _default(name: str) -> LibraryDefault:
    return LibraryDefault("convnets.inference.transfer", "transfer", name)


def register(sub) -> None:
    p = sub.add_parser("transfer", help="fit a linear classifier on a network's frozen features "
                                        "from N images per class; compare with training from scratch")
    add_target_arguments(p, ema=None)
    # The data help names the built-in digits as the default, and so it is.
    p.add_argument("--data", default="digits", help=f"the new task's {config_help('data')}")
    p.add_argument("--shots", type=int, required=True, help="training images per class")
    p.add_argument("--classes", help="some of the data's classes: names, indices or ranges, "
                                     "e.g. 5-9 or cat,dog")
    p.add_argument("--finetune", action="store_true",
                   help="also fine-tune the whole network from its trained weights")
    p.add_argument("--no-scratch", dest="scratch", action="store_false",
                   help="skip training from scratch (e.g. to compare the features of "
                        "several networks against one scratch baseline)")
    p.add_argument("--draws", type=int, default=_default("draws"),
                   help="draws of the training images, one seed each (default %(default)s)")
    p.add_argument("--seed", type=int, default=_default("seed"),
                   help="seed of the first draw (default %(default)s)")
    p.add_argument("--steps", type=int, default=_default("steps"),
                   help="SGD steps from scratch and for fine-tuning (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    import json

    from ..inference.transfer import METHODS, transfer

    res = transfer(args.target, args.data, args.shots, classes=args.classes, model=args.model,
                   finetune=args.finetune, scratch=args.scratch, device=args.device,
                   log=None if args.json else note, **given(args, ("draws", "seed", "steps")))
    if args.json:
        print(json.dumps(res.as_dict()))
        return
    seeds = (f"seed {res.seeds[0]}" if len(res.seeds) == 1
             else f"seeds {res.seeds[0]}-{res.seeds[-1]}")
    print(f"{res.model} from {res.target} -> {res.data}: {len(res.classes)} classes "
          f"({', '.join(res.classes[:10])}{', ...' if len(res.classes) > 10 else ''}), "
          f"{res.shots} training images each, {len(res.seeds)} draws ({seeds}), "
          f"{res.test_images} test images")
    for method, errs in res.errors.items():
        mean, std = res.mean_std(method)
        draws = " ".join(f"{e:.1f}" for e in errs)
        print(f"  {METHODS[method]:<38} test top-1 error {mean:6.2f}% +- {std:5.2f}  "
              f"(per draw: {draws})")
