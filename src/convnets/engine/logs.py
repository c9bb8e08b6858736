"""What a run writes besides checkpoints: metrics.jsonl (one JSON line per epoch),
TensorBoard scalars, curves.png and bad_files.txt (the image files it had to skip)."""
from __future__ import annotations

import json
import os
from typing import Callable

from .checkpoint import atomic_write

__all__ = ["read_history", "write_history", "epoch_line", "tensorboard", "plot_curves",
           "report_bad_files", "BAD_FILES"]

BAD_FILES = "bad_files.txt"


def read_history(path: str, upto: int) -> list[dict]:
    """metrics.jsonl lines up to epoch ``upto``; later ones belong to an epoch whose
    checkpoint was never committed and are dropped."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r for r in rows if r["epoch"] <= upto]


def write_history(path: str, rows: list[dict]) -> None:
    atomic_write(path, lambda f: f.write("".join(json.dumps(r) + "\n" for r in rows).encode()))


def epoch_line(row: dict, epochs: int) -> str:
    return (f"epoch {row['epoch']:>3}/{epochs}  lr {row['lr']:.4g}  train loss {row['train_loss']:.4f} "
            f"top-1 err {row['train_top1']:.2f}%  test loss {row['test_loss']:.4f} "
            f"top-1 err {row['test_top1']:.2f}% top-5 err {row['test_top5']:.2f}%  "
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
    ax_err.plot(epochs, [r["train_top1"] for r in history], label="train top-1")
    ax_err.plot(epochs, [r["test_top1"] for r in history], label="test top-1")
    ax_err.plot(epochs, [r["test_top5"] for r in history], label="test top-5", linestyle="--")
    ax_err.set(xlabel="epoch", ylabel="error (%)", title="error")
    # Logarithmic axes: the last epochs, where runs differ, are otherwise a flat line at 0
    # (symmetric log for the error, which can be exactly 0).
    ax_loss.set_yscale("log")
    ax_err.set_yscale("symlog", linthresh=1.0)
    for ax in (ax_loss, ax_err):
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
