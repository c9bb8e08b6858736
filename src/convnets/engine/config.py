"""The training configuration and the papers' recipes.

A recipe is a named set of hyper-parameters; a run's configuration is a recipe with
the user's overrides applied, saved resolved into the run directory (config.json) so
that the run can be resumed and evaluated without the command line that started it.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict, dataclass, field, fields

__all__ = ["TrainConfig", "Recipe", "RECIPES", "list_recipes", "recipe_config", "load_config"]


@dataclass
class TrainConfig:
    """Everything that decides what a training run computes.

    Epoch-valued fields (``milestones``, ``warmup_epochs``) count whole passes over the
    training split; the learning rate is updated after every optimizer step.
    """

    model: str = "resnet20"
    data: str | None = None              # dataset spec; None = the built-in digits
    preset: str | None = None            # augmentation preset; None = the dataset's default
    recipe: str = "digits"
    epochs: int = 30
    batch_size: int = 64                 # per process; the global batch is this x world size
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    schedule: str = "step"               # "step" or "cosine"
    milestones: list[int] = field(default_factory=list)  # epochs where the lr is divided
    gamma: float = 0.1                   # the divisor's inverse: lr *= gamma at each milestone
    warmup_epochs: float = 0.0           # linear warm-up from lr/100 (Goyal et al. 2017)
    label_smoothing: float = 0.0
    init: str = "default"                # "default" (the model's own), "he" or "lsuv"
    amp: str | None = None               # None, "bf16" or "fp16"
    channels_last: bool = False
    accum_steps: int = 1
    ema: float = 0.0                     # EMA decay per optimizer step; 0 = no EMA
    snapshot_ensemble: int = 0           # M cosine cycles with one snapshot each; 0 = off
    workers: int = 0
    seed: int = 0
    deterministic: bool = False
    sync_bn: bool = False
    device: str = "auto"
    input_size: list[int] | None = None  # (C, H, W) the model is trained at; None = its own

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(message)

        need(self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}")
        need(self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}")
        need(self.lr > 0, f"--lr must be positive, got {self.lr}")
        need(0 <= self.momentum < 1, f"--momentum must be in [0, 1), got {self.momentum}")
        need(not self.nesterov or self.momentum > 0, "--nesterov needs a positive --momentum")
        need(self.weight_decay >= 0, f"--wd must be non-negative, got {self.weight_decay}")
        need(self.schedule in ("step", "cosine"),
             f"--schedule must be step or cosine, got {self.schedule!r}")
        need(all(0 < m for m in self.milestones) and list(self.milestones) == sorted(self.milestones),
             f"--milestones must be increasing positive epochs, got {self.milestones}")
        need(self.warmup_epochs >= 0, f"--warmup must be non-negative, got {self.warmup_epochs}")
        need(0 <= self.label_smoothing < 1,
             f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        need(self.init in ("default", "he", "lsuv"), f"--init must be he or lsuv, got {self.init!r}")
        need(self.amp in (None, "bf16", "fp16"), f"--amp must be bf16 or fp16, got {self.amp!r}")
        need(self.accum_steps >= 1, f"--accum-steps must be at least 1, got {self.accum_steps}")
        need(0 <= self.ema < 1, f"--ema decay must be in [0, 1), got {self.ema}")
        need(self.snapshot_ensemble >= 0, "--snapshot-ensemble must be non-negative")
        if self.snapshot_ensemble:
            need(self.epochs % self.snapshot_ensemble == 0,
                 f"--snapshot-ensemble {self.snapshot_ensemble} must divide --epochs {self.epochs} "
                 "(each cycle is a whole number of epochs)")
        need(self.workers >= 0, f"--workers must be non-negative, got {self.workers}")

    def model_input_size(self) -> tuple[int, int, int]:
        """The input the run's model sees: ``input_size`` or the model's published one."""
        from ..models import model_info

        return tuple(self.input_size) if self.input_size else model_info(self.model).input_size

    def replace(self, **overrides) -> "TrainConfig":
        """A copy with ``overrides`` applied (None values are ignored), validated."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown training option {unknown[0]!r}")
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")


def load_config(path: str | os.PathLike) -> TrainConfig:
    """Read a run's config.json."""
    try:
        with open(path) as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"no config.json in the run directory: {path}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    known = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in raw.items() if k in known})


# --- recipes ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Recipe:
    name: str
    source: str                   # where the numbers come from
    settings: dict                # TrainConfig fields this recipe sets
    notes: str = ""


def _recipe(name: str, source: str, notes: str = "", **settings) -> Recipe:
    return Recipe(name, source, settings, notes)


# ImageNet, DenseNet style (Huang et al. 2017, Section 4.2): batch 256, 90 epochs,
# lr 0.1 divided by 10 at epochs 30 and 60, weight decay 1e-4, Nesterov momentum 0.9
# without dampening, and the augmentation of fb.resnet.torch (datasets/imagenet.lua), on
# which the DenseNet and GUNN Torch code are built: preset `fb-resnet`.
_DENSENET_IMAGENET = dict(preset="fb-resnet", epochs=90, batch_size=256, lr=0.1, momentum=0.9,
                          nesterov=True, weight_decay=1e-4, schedule="step", milestones=[30, 60])

# CIFAR, GUNN (Qiao et al. 2018, Section 6.2): batch 64, lr 0.1, weight decay 1e-4,
# momentum 0.9 without dampening (Nesterov in the authors' train.lua), 300 epochs.
_GUNN_CIFAR = dict(preset="gunn-cifar", epochs=300, batch_size=64, lr=0.1, momentum=0.9,
                   nesterov=True, weight_decay=1e-4)

RECIPES: dict[str, Recipe] = {r.name: r for r in [
    _recipe(
        "digits", "convnets' own small default",
        "ResNet-20 (He et al. 2016, Section 4.2) on the built-in 8x8 digits resized to 32x32 "
        "with the digits augmentation; a few minutes on 2 CPU cores. Chosen on 287 "
        "validation images held out of the training split: ResNet-20 at lr 0.05 for 20 "
        "epochs, 0.35% validation error (lr 0.1: 0.70%); LeNet-5 stays at 1.05% over lr "
        "0.005-0.01, 30-60 epochs, label smoothing and seeds (lr 0.02 or batch 16 "
        "saturates its tanh units), and made 2.22% test error with lr 0.007 for 40 epochs.",
        model="resnet20", epochs=20, batch_size=32, lr=0.05, momentum=0.9, nesterov=True,
        weight_decay=5e-4, schedule="cosine", warmup_epochs=1.0, workers=1),
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
        model="gunn24", **_GUNN_CIFAR, schedule="cosine", snapshot_ensemble=6),
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
        nesterov=False, weight_decay=1e-4, schedule="step", milestones=[30, 60]),
    _recipe(
        "alexnet", "Krizhevsky et al. 2012, Section 5",
        "The paper divides the lr by 10 when validation error stops improving, three times in "
        "about 90 epochs; fixed at epochs 30, 60 and 80 here so that runs are reproducible. "
        "Dropout 0.5 in the first two fully connected layers is part of the model. The paper "
        "initialises biases to 1 in some layers; the model's own initialisation is used.",
        model="alexnet", preset="alexnet", epochs=90, batch_size=128, lr=0.01, momentum=0.9,
        nesterov=False, weight_decay=5e-4, schedule="step", milestones=[30, 60, 80]),
]}


def list_recipes() -> list[str]:
    return list(RECIPES)


def recipe_config(name: str, **overrides) -> TrainConfig:
    """The configuration of recipe ``name`` with ``overrides`` (None values ignored)."""
    key = name.strip().lower().replace("_", "-")
    if key not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; `convnets recipes` lists "
                         f"{', '.join(RECIPES)}")
    base = TrainConfig(**{**RECIPES[key].settings, "recipe": key})
    return base.replace(**overrides)
