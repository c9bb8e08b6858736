"""What a run writes besides checkpoints: metrics.jsonl (one JSON line per epoch),
TensorBoard scalars, curves.png and bad_files.txt (the image files it had to skip).

Error rates are named ``..._err`` (percent), losses ``..._loss``. Non-finite numbers are
written as JSON ``null`` so that strict readers accept the file; they read back as NaN.
Each row also carries the best test error so far and its epoch: papers such as the GUNN
paper report the best test error over all epochs, while the run's headline is its last
epoch, so both are at hand for a like-for-like comparison.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Callable

from ..core import atomic_write, replacing
from ..errors import RunDirError

__all__ = ["METRIC_KEYS", "read_history", "write_history", "with_best", "best_row", "epoch_line",
           "tensorboard", "plot_curves", "report_bad_files", "BAD_FILES"]

BAD_FILES = "bad_files.txt"

# Keys of metrics.jsonl rows before error rates were named as such; old runs keep reading.
_RENAMED = {"train_top1": "train_top1_err", "test_top1": "test_top1_err",
            "test_top5": "test_top5_err", "ema_test_top1": "ema_test_top1_err",
            "ema_test_top5": "ema_test_top5_err"}

# Every row has these; EMA runs add ema_test_top1_err / ema_test_top5_err.
METRIC_KEYS = ("epoch", "lr", "train_loss", "train_top1_err", "test_loss", "test_top1_err",
               "test_top5_err", "best_test_top1_err", "best_epoch", "images_per_s", "time")


def _finite_or_none(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _none_as_nan(value: Any) -> Any:
    return math.nan if value is None else value


def read_history(path: str, upto: int | None = None) -> list[dict]:
    """metrics.jsonl rows up to epoch ``upto`` (all when None); later ones belong to an
    epoch whose checkpoint was never committed and are dropped."""
    if not os.path.exists(path):
        return []
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise RunDirError(f"{path}, line {number}, is not JSON") from None
            epoch = row.get("epoch") if isinstance(row, dict) else None
            if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
                raise RunDirError(f"{path}, line {number}, is not a metrics row (no epoch number)")
            row = {_RENAMED.get(k, k): _none_as_nan(v) for k, v in row.items()}
            for key, value in row.items():
                if (key in METRIC_KEYS or key.endswith(("_err", "_loss"))) and not _is_number(value):
                    raise RunDirError(f"{path}, line {number}: {key} is {json.dumps(value)}, "
                                      "not a number")
            # A row from another version may lack a metric: it reads as not measured.
            rows.append({**{k: math.nan for k in METRIC_KEYS}, **row})
    rows = [r for r in rows if upto is None or r["epoch"] <= upto]
    return with_best(rows)


def write_history(path: str, rows: list[dict]) -> None:
    lines = "".join(json.dumps({k: _finite_or_none(v) for k, v in r.items()}, allow_nan=False) + "\n"
                    for r in rows)
    atomic_write(path, lambda f: f.write(lines.encode()))


def best_row(rows: list[dict], key: str = "test_top1_err") -> dict | None:
    """The row with the lowest finite ``key`` (the earliest on ties), or None."""
    finite = [r for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    return min(finite, key=lambda r: (r[key], r["epoch"])) if finite else None


def with_best(rows: list[dict]) -> list[dict]:
    """Fill in ``best_test_top1_err`` and ``best_epoch`` (the best so far) in every row."""
    for i, row in enumerate(rows):
        best = best_row(rows[: i + 1])
        row["best_test_top1_err"] = best["test_top1_err"] if best else math.nan
        row["best_epoch"] = best["epoch"] if best else None
    return rows


def epoch_line(row: dict, epochs: int) -> str:
    return (f"epoch {row['epoch']:>3}/{epochs}  lr {row['lr']:.4g}  train loss {row['train_loss']:.4f} "
            f"top-1 err {row['train_top1_err']:.2f}%  test loss {row['test_loss']:.4f} "
            f"top-1 err {row['test_top1_err']:.2f}% top-5 err {row['test_top5_err']:.2f}%  "
            f"{row['images_per_s']:.0f} img/s  {row['time']:.1f}s")


def report_bad_files(directory: str | None, bad: list[tuple[str, str]], when: str,
                     log: Callable[[str], None], show: int = 5) -> None:
    """Name the first ``show`` skipped files on the console (``when``: "epoch 3", ...) and
    keep every one met so far in ``directory/bad_files.txt``: one ``path<TAB>reason``
    line per file, sorted (``cut -f1`` gives the paths)."""
    listed = ""
    if directory:
        path = os.path.join(directory, BAD_FILES)
        known: dict[str, str] = {}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                known = dict(line.rstrip("\n").rsplit("\t", 1) for line in f if "\t" in line)
        known.update(bad)
        text = "".join(f"{p}\t{r}\n" for p, r in sorted(known.items()))
        atomic_write(path, lambda f: f.write(text.encode("utf-8")))
        listed = f"; all listed in {path}"
    log(f"{when}: skipped {len(bad)} unreadable image file{'s' if len(bad) != 1 else ''} "
        f"(each replaced by the next readable one{listed}):")
    for p, reason in bad[:show]:
        log(f"  {p}  ({reason})")
    if len(bad) > show:
        log(f"  ... and {len(bad) - show} more")


def tensorboard(run_dir: str, start_epoch: int, log: Callable[[str], None]):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log("note: tensorboard is not installed; metrics go to metrics.jsonl only")
        return None
    return SummaryWriter(os.path.join(run_dir, "tb"), purge_step=start_epoch + 1)


def plot_curves(history: list[dict], path: str) -> None:
    """Loss and top-1/top-5 error against epoch, the way the papers draw training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(11, 4))
    ax_loss.plot(epochs, [r["train_loss"] for r in history], label="train")
    ax_loss.plot(epochs, [r["test_loss"] for r in history], label="test")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_err.plot(epochs, [r["train_top1_err"] for r in history], label="train top-1")
    ax_err.plot(epochs, [r["test_top1_err"] for r in history], label="test top-1")
    ax_err.plot(epochs, [r["test_top5_err"] for r in history], label="test top-5", linestyle="--")
    best = best_row(history)
    if best is not None:
        ax_err.plot([best["epoch"]], [best["test_top1_err"]], "o", color="C1", fillstyle="none",
                    label=f"best test top-1 {best['test_top1_err']:.2f}% (epoch {best['epoch']})")
    ax_err.set(xlabel="epoch", ylabel="error (%)", title="error")
    # Logarithmic axes: the last epochs, where runs differ, are otherwise a flat line at 0
    # (symmetric log for the error, which can be exactly 0).
    ax_loss.set_yscale("log")
    ax_err.set_yscale("symlog", linthresh=1.0)
    for ax in (ax_loss, ax_err):
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    # Fixed margins rather than tight_layout, which measures every label first and took
    # as long as drawing the figure (the plot is the largest fixed cost of a run).
    fig.subplots_adjust(left=0.07, right=0.985, bottom=0.12, top=0.92, wspace=0.2)
    with replacing(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
