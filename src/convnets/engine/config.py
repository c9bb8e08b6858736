"""The training configuration and the papers' recipes.

A recipe is a named set of hyper-parameters; a run's configuration is a recipe with
the user's overrides applied, saved resolved into the run directory (config.json) so
that the run can be resumed and evaluated without the command line that started it.

Every option is defined once, as a field of :class:`TrainConfig`: its type, default,
range and help text live there, the ``convnets train`` flags are generated from the
fields (:func:`train_options`), and the same checks run for a Python caller, for the
command line and for a config.json read back from disk. The defaults are the ``digits``
recipe, the command's default.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..core import parse_input_size, read_json
from ..errors import ConfigError, RunDirError
from ..options import Option, at_least, check_fields, in_range, option, options_of, positive

__all__ = ["TrainConfig", "Recipe", "RECIPES", "Option", "train_options", "check_whole", "int_list",
           "list_recipes",
           "recipe_config", "load_config", "resume_changes"]


def check_whole(**values: tuple[Any, int]) -> None:
    """``name=(value, least)``: each value a whole number of at least ``least``, or a
    ConfigError naming the first that is not (for arguments of library functions)."""
    for name, (value, least) in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError.of(name, f"must be a whole number of at least {least}, got {value!r}")


def int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise ConfigError(f"expected comma-separated whole numbers, got {text!r}") from None


def _parse_input_size(text: str) -> list[int]:
    return list(parse_input_size(text))


def _increasing(v: list[int]) -> str | None:
    # An epoch listed twice decays twice there (the released GUNN ImageNet schedule).
    ok = all(m > 0 for m in v) and list(v) == sorted(v)
    return None if ok else f"must be positive epochs in non-decreasing order, got {v}"


def _max_pixels() -> int:
    # Read when a config is made: importing convnets.data loads torchvision, which the
    # command line's parser, built from these fields, does without.
    from ..data.images import DEFAULT_MAX_PIXELS

    return DEFAULT_MAX_PIXELS


# The data loaders derive a seed per epoch and process, about 10^9 times this one
# (engine/distributed.py, set_epoch), and torch's generators take 64 bits: 32 bits of seed
# keep every derived seed in range (NumPy's own seeds are 32 bits as well).
SEED_LIMIT = 2**32


def _seed(v: int) -> str | None:
    return None if abs(v) < SEED_LIMIT else (f"must be between -{SEED_LIMIT - 1} and "
                                             f"{SEED_LIMIT - 1}, got {v}")


def _input_size(v: list[int] | None) -> str | None:
    if v is None:
        return None
    ok = len(v) == 3 and v[0] in (1, 3) and min(v) >= 1
    return None if ok else f"must be (C, H, W) with C 1 or 3 and positive sides, got {v}"


@dataclass
class TrainConfig:
    """Everything that decides what a training run computes.

    Epoch-valued fields (``milestones``, ``warmup_epochs``) count whole passes over the
    training split; the learning rate is updated after every optimizer step. The
    defaults are the ``digits`` recipe: ResNet-20 on the built-in digits.
    """

    model: str = option("resnet20", "model name (default: the recipe's model)")
    data: str | None = option(None, "dataset: digits (default), digits:CLASSES (some digits, "
                            "relabelled 0..k-1: digits:0-4, digits:5,7,9), synthetic[:N], "
                            "cifar10:DIR, cifar100:DIR, imagenet:DIR, folder:DIR",
                            flag="--data")
    preset: str | None = option(None, "augmentation preset (default: the dataset's; `convnets recipes`)",
                              flag="--preset")
    recipe: str = option("digits", "the recipe these settings started from")
    epochs: int = option(20, "passes over the training split", flag="--epochs", check=at_least(1))
    batch_size: int = option(32, "images per optimizer step and process (global batch: this x "
                           "processes)", flag="--batch-size", check=at_least(1))
    lr: float = option(0.05, "peak learning rate", flag="--lr", check=positive)
    momentum: float = option(0.9, "SGD momentum", flag="--momentum", check=in_range(0, 1))
    nesterov: bool = option(True, "Nesterov momentum", flag="--nesterov")
    weight_decay: float = option(5e-4, "L2 weight decay", flag="--wd", check=at_least(0))
    schedule: str = option("cosine", "learning-rate schedule", flag="--schedule",
                         choices=("step", "cosine"))
    milestones: list[int] = option([], "step schedule: epochs where the lr is multiplied by gamma, "
                                 "e.g. 150,225", flag="--milestones", parse=int_list,
                                 check=_increasing, metavar="E1,E2,...")
    gamma: float = option(0.1, "step schedule: factor at each milestone", flag="--gamma",
                        check=lambda v: None if 0 < v <= 1 else f"must be in (0, 1], got {v}")
    warmup_epochs: float = option(1.0, "linear warm-up from lr/100 (Goyal et al. 2017), in epochs",
                                flag="--warmup", check=at_least(0))
    label_smoothing: float = option(0.0, "label smoothing", flag="--label-smoothing",
                                  check=in_range(0, 1))
    init: str = option("default", "weight initialisation (default: the model's own, its paper's)",
                     flag="--init", choices=("default", "he", "lsuv"))
    amp: str | None = option(None, "mixed precision (fp16: CUDA GPUs only)", flag="--amp",
                           choices=("bf16", "fp16"))
    channels_last: bool = option(False, "channels-last memory format", flag="--channels-last")
    accum_steps: int = option(1, "micro-batches per optimizer step", flag="--accum-steps",
                            check=at_least(1))
    ema: float = option(0.0, "keep an exponential moving average of the weights with this decay "
                      "per step (0: none; the flag alone: 0.999)", flag="--ema",
                      check=in_range(0, 1), const=0.999, metavar="DECAY")
    snapshot_ensemble: int = option(0, "M cosine cycles with restarts, one snapshot each (Huang "
                                  "et al. 2017; 0: off)", flag="--snapshot-ensemble",
                                  check=at_least(0), metavar="M")
    workers: int = option(1, "data-loading processes", flag="--workers", check=at_least(0),
                        resume=True)
    max_pixels: int = option(_max_pixels, "refuse image files of more pixels than this "
                           "(each is skipped and named like any unreadable file; large JPEGs are "
                           "decoded at a reduced scale instead)", flag="--max-pixels",
                           check=at_least(1), resume=True)
    # Checkpoints within an epoch (engine/preemption.py).
    save_every: int = option(0, "also commit a checkpoint every N optimizer steps, within epochs "
                           "(0: at epoch ends only; SIGTERM and SIGUSR1 always commit one at the "
                           "next step and stop)", flag="--save-every", check=at_least(0),
                           resume=True, metavar="N")
    seed: int = option(0, "random seed", flag="--seed", check=_seed)
    deterministic: bool = option(False, "deterministic algorithms (bit-exact resume on the CPU)",
                               flag="--deterministic")
    sync_bn: bool = option(False, "synchronise batch norm over processes", flag="--sync-bn")
    device: str = option("auto", "auto, cpu, cuda or cuda:N", flag="--device", resume=True)
    input_size: list[int] | None = option(None, "S, HxW or CxHxW to train at (default: the "
                                        "model's own)", flag="--input-size",
                                        parse=_parse_input_size, check=_input_size)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Types and ranges of every field, then the rules that tie fields together."""
        check_fields(self)
        if self.nesterov and self.momentum == 0:
            raise ConfigError.of("nesterov", "needs a positive momentum")
        if self.snapshot_ensemble and self.epochs % self.snapshot_ensemble:
            raise ConfigError.of("snapshot_ensemble", f"{self.snapshot_ensemble} must divide the "
                                 f"{self.epochs} epochs (each cycle is a whole number of epochs)")

    def model_input_size(self) -> tuple[int, int, int]:
        """The input the run's model sees: ``input_size`` or the model's published one."""
        from ..models import model_info

        return tuple(self.input_size) if self.input_size else model_info(self.model).input_size

    def replace(self, **overrides) -> "TrainConfig":
        """A copy with ``overrides`` applied (None values are ignored), validated."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown training option {unknown[0]!r}")
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")


def train_options() -> list[tuple[dataclasses.Field, Option, Any]]:
    """(field, option, value type) of every field that is a ``convnets train`` flag."""
    return options_of(TrainConfig)


def resume_changes(saved: TrainConfig, cfg: TrainConfig) -> list[str]:
    """Fields in which ``cfg`` differs from the run's ``saved`` config although they decide
    what the run computes (only fields marked ``resume`` may change on resume)."""
    return [f.name for f in fields(TrainConfig)
            if not f.metadata["option"].resume and getattr(saved, f.name) != getattr(cfg, f.name)]


def load_config(path: str | os.PathLike) -> TrainConfig:
    """Read a run's config.json; a missing, malformed or out-of-range file is a RunDirError."""
    raw = read_json(path, missing=f"no config.json in the run directory: {path}", error=RunDirError)
    if not isinstance(raw, dict):
        raise RunDirError(f"{path} does not hold a configuration (a JSON object)")
    known = {f.name for f in fields(TrainConfig)}
    try:
        return TrainConfig(**{k: v for k, v in raw.items() if k in known})
    except ConfigError as err:
        raise RunDirError(f"{path}: {err}") from None


# --- recipes ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Recipe:
    """A paper's hyper-parameters. ``settings`` are TrainConfig fields; every field of
    ``SCHEDULE_FIELDS`` is set explicitly by each recipe but ``digits`` (whose values are
    TrainConfig's defaults), so that no recipe inherits the small default's schedule."""

    name: str
    source: str                   # where the numbers come from
    settings: dict                # TrainConfig fields this recipe sets
    notes: str = ""


SCHEDULE_FIELDS = ("model", "epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay",
                   "schedule", "milestones", "warmup_epochs")


def _recipe(name: str, source: str, notes: str = "", **settings) -> Recipe:
    return Recipe(name, source, settings, notes)


# ImageNet, DenseNet style (Huang et al. 2017, Section 4.2): batch 256, 90 epochs,
# lr 0.1 divided by 10 at epochs 30 and 60, weight decay 1e-4, Nesterov momentum 0.9
# without dampening, and the augmentation of fb.resnet.torch (datasets/imagenet.lua), on
# which the DenseNet and GUNN Torch code are built: preset `fb-resnet`.
_DENSENET_IMAGENET = dict(preset="fb-resnet", epochs=90, batch_size=256, lr=0.1, momentum=0.9,
                          nesterov=True, weight_decay=1e-4, schedule="step", milestones=[30, 60],
                          warmup_epochs=0.0)

# CIFAR, GUNN (Qiao et al. 2018, Section 6.2): batch 64, lr 0.1, weight decay 1e-4,
# momentum 0.9 without dampening (Nesterov in the authors' train.lua), 300 epochs.
_GUNN_CIFAR = dict(preset="gunn-cifar", epochs=300, batch_size=64, lr=0.1, momentum=0.9,
                   nesterov=True, weight_decay=1e-4, warmup_epochs=0.0)

RECIPES: dict[str, Recipe] = {r.name: r for r in [
    _recipe(
        "digits", "convnets' own small default",
        "ResNet-20 (He et al. 2016, Section 4.2) on the built-in 8x8 digits resized to 32x32 "
        "with the digits augmentation; a few minutes on 2 CPU cores. Chosen on 287 "
        "validation images held out of the training split: ResNet-20 at lr 0.05 for 20 "
        "epochs, 0.35% validation error (lr 0.1: 0.70%); LeNet-5 stays at 1.05% over lr "
        "0.005-0.01, 30-60 epochs, label smoothing and seeds (lr 0.02 or batch 16 "
        "saturates its tanh units), and made 2.22% test error with lr 0.007 for 40 epochs.",
        # TrainConfig's defaults are this recipe; it sets nothing of its own.
    ),
    _recipe(
        "gunn-cifar", "Qiao et al. 2018, Section 6.2; augmentation from the authors' code "
                      "(github.com/joe-siyuan-qiao/GUNN, datasets/cifar10.lua and transforms.lua)",
        "lr /10 at the 150th and 225th epoch counted from 1, as the released train.lua does "
        "(epoch >= 0.5 and 0.75 x nEpochs): after 149 and 224 epochs. Augmentation "
        "`gunn-cifar` is the released code's: flip, mean-colour pad + crop, then the "
        "'Jigsaw' circular shift, which the paper does not describe (it names mirroring "
        "and shifting only: --preset cifar).",
        model="gunn15", **_GUNN_CIFAR, schedule="step", milestones=[149, 224]),
    _recipe(
        "gunn-cifar-snapshot", "Qiao et al. 2018, Table 3 (GUNN-24 Ensemble, 24 x 6 layers, "
                               "177.6M parameters: 6 snapshots of GUNN-24) and Section 6.3 "
                               "(Snapshot Ensemble, Huang et al. 2017a); Section 6.2 otherwise",
        "6 cosine cycles of 50 epochs restarting at lr 0.1 (Huang et al. 2017a, Eq. 2), one "
        "snapshot at the end of each; `convnets eval RUN` averages their softmax outputs "
        "(published: 3.02% C10, 15.61% C100). The paper gives neither the cycle length nor "
        "the restart lr: 300 epochs / 6 and its CIFAR lr 0.1 are assumed (Huang et al. "
        "report restart lrs 0.1 and 0.2).",
        model="gunn24", **_GUNN_CIFAR, schedule="cosine", milestones=[], snapshot_ensemble=6),
    _recipe(
        "gunn-imagenet", "Qiao et al. 2018, Section 6.2: the DenseNet ImageNet schedule",
        "Huang et al. 2017, Section 4.2: 90 epochs, lr /10 at 30 and 60. Augmentation of "
        "fb.resnet.torch, as the authors' datasets/imagenet.lua (Section 6.1: that of "
        "ResNet, DenseNet and ResNeXt).",
        model="gunn18", **_DENSENET_IMAGENET),
    _recipe(
        "gunn-imagenet-released", "the authors' code (github.com/joe-siyuan-qiao/GUNN): the "
                                  "README's ImageNet command (-nEpochs 120, -batchSize 256) "
                                  "and train.lua's learningRate",
        "lr 0.1, then 0.01 from epoch 31, 0.001 from 61 and 1e-5 from 91 (counted from 1): "
        "train.lua raises the fourth decay step to two (decay = floor((epoch - 1) / 30), plus "
        "one from 3 on), hence 90 listed twice.",
        model="gunn18", **{**_DENSENET_IMAGENET, "epochs": 120, "milestones": [30, 60, 90, 90]}),
    _recipe(
        "densenet-imagenet", "Huang et al. 2017, Section 4.2",
        "Nesterov momentum 0.9 without dampening; augmentation of fb.resnet.torch, on which "
        "DenseNet's code is built.",
        model="densenet121", **_DENSENET_IMAGENET),
    _recipe(
        "resnet-imagenet", "He et al. 2016, Section 3.4 (fixed steps as torchvision's reference); "
                           "augmentation of fb.resnet.torch",
        "The paper divides by 10 on plateaus (about 120 epochs); the common 90-epoch form "
        "divides every 30 epochs. fb.resnet.torch replaces the paper's scale augmentation "
        "(shorter side 256-480) by the 8-100% random-sized crop, which gave it a better "
        "validation error, and adds colour jitter to the paper's PCA lighting.",
        model="resnet50", preset="fb-resnet", epochs=90, batch_size=256, lr=0.1, momentum=0.9,
        nesterov=False, weight_decay=1e-4, schedule="step", milestones=[30, 60],
        warmup_epochs=0.0),
    _recipe(
        "alexnet", "Krizhevsky et al. 2012, Section 5",
        "The paper divides the lr by 10 when validation error stops improving, three times in "
        "about 90 epochs; fixed at epochs 30, 60 and 80 here so that runs are reproducible. "
        "Dropout 0.5 in the first two fully connected layers is part of the model. The paper "
        "initialises biases to 1 in some layers; the model's own initialisation is used.",
        model="alexnet", preset="alexnet", epochs=90, batch_size=128, lr=0.01, momentum=0.9,
        nesterov=False, weight_decay=5e-4, schedule="step", milestones=[30, 60, 80],
        warmup_epochs=0.0),
]}


def list_recipes() -> list[str]:
    return list(RECIPES)


def recipe_config(name: str, **overrides) -> TrainConfig:
    """The configuration of recipe ``name`` with ``overrides`` (None values ignored)."""
    key = name.strip().lower().replace("_", "-")
    if key not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; `convnets recipes` lists "
                         f"{', '.join(RECIPES)}")
    base = TrainConfig(**{**RECIPES[key].settings, "recipe": key})
    return base.replace(**overrides)
