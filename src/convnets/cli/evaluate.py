"""``convnets eval``: top-1/top-5 error of runs, weights files or models on a test split
(several: their ensemble; :func:`convnets.engine.runs.evaluate_targets`)."""
from __future__ import annotations

import argparse
from collections import Counter

from .common import UserError, flag_type, note
from .targets import add_target_arguments

__all__ = ["register", "describe_members", "describe_views"]


def _scales(text: str) -> list[int]:
    from ..engine.config import int_list
    from ..engine.evaluation import check_scales

    scales = int_list(text)
    check_scales(scales)
    return scales


def register(sub) -> None:
    p = sub.add_parser("eval", help="top-1/top-5 error of runs, checkpoints or models (several: ensemble)")
    add_target_arguments(p, ema="evaluate", several=True)
    p.add_argument("--data", help="dataset spec (default: the run's)")
    p.add_argument("--preset", help="preset (default: the run's or the dataset's): the center "
                                    "protocol's image; for the others, whether training flipped "
                                    "(mirrored views)")
    from ..engine.protocols import CROPS_PROTOCOLS, PROTOCOLS

    p.add_argument("--protocol", choices=list(PROTOCOLS), metavar="NAME",
                   help="a paper's test protocol (README, 'Evaluation protocols'): "
                        + ", ".join(PROTOCOLS) + "; default: center")
    p.add_argument("--crops", choices=list(CROPS_PROTOCOLS), default="center",
                   help="older names of protocols: " + ", ".join(
                       f"{k} = {v}" for k, v in CROPS_PROTOCOLS.items() if k != v))
    p.add_argument("--scales", type=flag_type(_scales),
                   help="multi-view protocols: shorter sides in pixels, e.g. 256,384,512 "
                        "(default: the protocol's, scaled by the model's input / 224)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--out", help="where to write eval[-PROTOCOL].json and confusion[-PROTOCOL].png "
                             "(default: the run directory; an ensemble's beside its first run)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.set_defaults(func=run)


def describe_members(names: list[str]) -> str:
    """What was evaluated, by model name (one per member): ``resnet20``, or ``ensemble of 3
    (resnet20 x2, resnet56)`` (a snapshot-ensemble run counts one member per snapshot)."""
    if len(names) == 1:
        return names[0]
    counts = Counter(names)
    parts = [name if n == 1 else f"{name} x{n}" for name, n in counts.items()]
    return f"ensemble of {len(names)} ({', '.join(parts)})"


def run(args: argparse.Namespace) -> None:
    import json
    import sys

    from ..engine.protocols import CROPS_PROTOCOLS
    from ..engine.runs import evaluate_targets

    if args.protocol and args.crops != "center":
        raise UserError("give --protocol or --crops, not both")
    protocol = args.protocol or CROPS_PROTOCOLS[args.crops]
    if args.scales and protocol == "center":
        raise UserError("--scales applies to the multi-view protocols, not to center")
    res = evaluate_targets(args.targets, data=args.data, preset=args.preset, model=args.model,
                           ema=args.ema, protocol=protocol, crops=args.crops, scales=args.scales,
                           batch_size=args.batch_size, workers=args.workers, device=args.device,
                           out=args.out, progress=sys.stderr.isatty(), log=note)
    if args.json:
        print(json.dumps(res["summary"]))
        return
    print(f"{describe_members(res['member_models'])}, {describe_views(res['views'])}, "
          f"{res['n']} test images")
    print(f"top-1 error {res['top1_err']:.2f}%  top-5 error {res['top5_err']:.2f}%  loss {res['loss']:.4f}")
    per_class = res["per_class_acc"].tolist()
    if len(per_class) <= 20:
        names = res["classes"] or [str(i) for i in range(len(per_class))]
        print("per-class accuracy: " + "  ".join(f"{name} {acc:.1f}%" for name, acc in zip(names, per_class)))
    if res["files"]:
        print("wrote " + " and ".join(res["files"]))


def describe_views(views: dict) -> str:
    """Which views were used: ``center crops`` (the evaluation preset's), or e.g.
    ``alexnet-10crop: 5 views per image (32x32 crops, shorter sides 37; no mirrors: the
    digits preset never flips in training)``."""
    from ..engine.protocols import get_protocol

    if views["protocol"] == "center":
        return "center crops"
    protocol = get_protocol(views["protocol"])
    crops = "whole images" if protocol.views == ("dense",) else "x".join(map(str, views["crop"])) + " crops"
    if views["mirrors"]:
        mirrors = "with mirrors"
    elif protocol.mirrors:
        mirrors = f"no mirrors: the {views['preset']} preset never flips in training"
    else:
        mirrors = "no mirrors"
    n = views["views_per_image"]
    return (f"{protocol.name}: {n} view{'s' if n != 1 else ''} per image ({crops}, shorter sides "
            f"{','.join(map(str, views['scales']))}; {mirrors})")
