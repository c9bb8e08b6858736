"""The paper's Table 5 ablation, small: GUNN-15 vs SUNN-15 vs GUNN-15-NoRes on the built-in
digits, same recipe and seeds; prints mean +- std test error and draws the Figure 3-style
training curves (SUNN-15, the network before its conversion, vs GUNN-15).

    python benchmarks/gunn_ablation.py --epochs 10 --size 16 --seeds 0 1 2 --out runs/gunn-ablation

Small on purpose (2 CPU cores): the 8x8 digits are upsampled to ``--size`` (16 by default,
not the models' 32) and trained with the engine's digits recipe for ``--epochs`` epochs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics

from convnets.data import open_dataset
from convnets.engine.config import recipe_config
from convnets.engine.train import fit

MODELS = ["gunn15", "sunn15", "gunn15_nores"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--size", type=int, default=16, help="input side (digits upsampled)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--out", default="runs/gunn-ablation")
    args = parser.parse_args()
    size = (3, args.size, args.size)
    data = (open_dataset("digits", "train", input_size=size, train_transform=True),
            open_dataset("digits", "test", input_size=size, train_transform=False))
    results: dict[str, list[dict]] = {}
    for model in args.models:
        for seed in args.seeds:
            cfg = recipe_config("digits", model=model, epochs=args.epochs, seed=seed,
                                batch_size=args.batch_size, lr=args.lr, input_size=list(size))
            run = fit(cfg, os.path.join(args.out, f"{model}-seed{seed}"), datasets=data,
                      log=lambda _msg: None, progress=False)
            results.setdefault(model, []).append({"seed": seed, "history": run["history"]})
            print(f"{model} seed {seed}: test error {run['last']['test_top1_err']:.2f}%", flush=True)
    print(f"\n{'model':<14} {'test error % (mean +- std)':>28}  seeds")
    for model, runs in results.items():
        errs = [r["history"][-1]["test_top1_err"] for r in runs]
        spread = statistics.stdev(errs) if len(errs) > 1 else 0.0
        print(f"{model:<14} {statistics.mean(errs):>20.2f} +- {spread:.2f}  "
              f"{' '.join(f'{e:.2f}' for e in errs)}")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "ablation.json"), "w") as f:
        json.dump({"args": vars(args), "results": results}, f, indent=1)
    _figure(results, os.path.join(args.out, "figure3.png"))


def _figure(results: dict[str, list[dict]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(9, 3.5))
    for model, style in (("sunn15", "--"), ("gunn15", "-")):
        for k, run in enumerate(results.get(model, [])):
            epochs = [h["epoch"] for h in run["history"]]
            label = None if k else {"sunn15": "SUNN-15 (before conversion)", "gunn15": "GUNN-15"}[model]
            ax_loss.plot(epochs, [h["train_loss"] for h in run["history"]], style, color="C0" if model == "sunn15" else "C3", label=label)
            ax_err.plot(epochs, [h["test_top1_err"] for h in run["history"]], style, color="C0" if model == "sunn15" else "C3", label=label)
    ax_loss.set(xlabel="epoch", ylabel="training loss", yscale="log")
    ax_err.set(xlabel="epoch", ylabel="test error (%)")
    ax_loss.legend()
    fig.suptitle("digits: a 15-layer network before and after conversion to GUNN (cf. Figure 3)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
