"""``convnets eval``: top-1/top-5 error of runs, weights files or models on a test split
(several: their ensemble; :func:`convnets.engine.runs.evaluate_targets`)."""
from __future__ import annotations

import argparse
from collections import Counter

from .common import UserError, flag_type, note
from .targets import add_target_arguments

__all__ = ["register", "describe_members"]


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
    p.add_argument("--preset", help="evaluation preset (default: the run's or the dataset's)")
    p.add_argument("--crops", choices=["center", "ten", "dense", "ten+dense"], default="center",
                   help="centre crop, 10 crops (AlexNet), dense multi-scale (VGG), or both")
    p.add_argument("--scales", type=flag_type(_scales),
                   help="dense evaluation: shorter sides, e.g. 256,384,512")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--out", help="where to write eval.json and confusion.png (default: the run directory)")
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

    from ..engine.runs import evaluate_targets

    if args.scales and args.crops == "center":
        raise UserError("--scales applies to --crops ten, dense and ten+dense")
    res = evaluate_targets(args.targets, data=args.data, preset=args.preset, model=args.model,
                           ema=args.ema, crops=args.crops, scales=args.scales,
                           batch_size=args.batch_size, workers=args.workers, device=args.device,
                           out=args.out, log=note)
    if args.json:
        print(json.dumps(res["summary"]))
        return
    what = describe_members(res["member_models"])
    print(f"{what}, {args.crops} crops, {res['n']} test images")
    print(f"top-1 error {res['top1_err']:.2f}%  top-5 error {res['top5_err']:.2f}%  loss {res['loss']:.4f}")
    per_class = res["per_class_acc"].tolist()
    if len(per_class) <= 20:
        names = res["classes"] or [str(i) for i in range(len(per_class))]
        print("per-class accuracy: " + "  ".join(f"{name} {acc:.1f}%" for name, acc in zip(names, per_class)))
    if res["out"]:
        print(f"wrote {res['out']}/eval.json" + (" and confusion.png" if len(per_class) <= 100 else ""))
