"""What a run writes besides checkpoints: metrics.jsonl (one JSON line per epoch),
TensorBoard scalars and curves.png."""
from __future__ import annotations

import json
import os
from typing import Callable

from .checkpoint import atomic_write

__all__ = ["read_history", "write_history", "epoch_line", "tensorboard", "plot_curves"]


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
