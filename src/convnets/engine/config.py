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
from ..data.images import DEFAULT_MAX_PIXELS
from ..data.sources import spec_help  # every source's spec form, registered by its module
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


def _factors(text: str) -> tuple[list[float], str | None]:
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        return [], f"must be comma-separated numbers, got {text!r}"
    bad = [v for v in values if not 0 < v <= 1]
    return values, (f"factors must be in (0, 1], got {bad[0]}" if bad else None)


def _option_value(text: str) -> bool | int | float | str:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _model_options(text: str) -> tuple[dict[str, Any], str | None]:
    options: dict[str, Any] = {}
    for item in (part.strip() for part in text.split(",") if part.strip()):
        key, eq, value = item.partition("=")
        if not eq or not key.strip().isidentifier() or not value.strip():
            return {}, f"must be KEY=VALUE pairs separated by commas, got {item!r}"
        options[key.strip()] = _option_value(value.strip())
    return options, None


@dataclass
class TrainConfig:
    """Everything that decides what a training run computes.

    Epoch-valued fields (``milestones``, ``warmup_epochs``) count whole passes over the
    training split; the learning rate is updated after every optimizer step. The
    defaults are the ``digits`` recipe: ResNet-20 on the built-in digits.
    """

    model: str = option("resnet20", "model name (default: the recipe's model)")
    data: str | None = option(None, f"dataset: {spec_help()}", flag="--data")
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
                         choices=("step", "cosine", "exp", "plateau"))
    milestones: list[int] = option([], "step schedule: epochs (or steps: --schedule-unit) where the "
                                 "lr is multiplied by gamma, "
                                 "e.g. 150,225", flag="--milestones", parse=int_list,
                                 check=_increasing, metavar="E1,E2,...")
    gamma: float = option(0.1, "step schedule: factor at each milestone", flag="--gamma",
                        check=lambda v: None if 0 < v <= 1 else f"must be in (0, 1], got {v}")
    warmup_epochs: float = option(1.0, "warm-up length in epochs (steps with --schedule-unit iter); "
                                "linear from lr/100 by default (Goyal et al. 2017)",
                                flag="--warmup", check=at_least(0))
    label_smoothing: float = option(0.0, "label smoothing", flag="--label-smoothing",
                                  check=in_range(0, 1))
    # The papers' optimizers, schedules and regularisers (engine/optim.py, schedules.py,
    # validation.py, init_from.py): every default leaves a run as it was before them.
    optimizer: str = option("sgd", "sgd, or rmsprop-tf: RMSProp as TensorFlow defines it (the "
                          "Inception recipes)", flag="--optimizer", choices=("sgd", "rmsprop-tf"))
    rmsprop_decay: float = option(0.9, "rmsprop-tf: decay of the mean square", flag="--rmsprop-decay",
                                check=in_range(0, 1))
    rmsprop_eps: float = option(1.0, "rmsprop-tf: epsilon, inside the square root",
                              flag="--rmsprop-eps", check=positive)
    decay_every: float = option(0.0, "exp schedule: epochs between two multiplications by gamma "
                              "(staircase)", flag="--decay-every", check=at_least(0))
    gammas: str = option("", "step schedule: one factor per milestone (default: gamma at each), "
                       "e.g. 0.4,0.5,0.5,0.2", flag="--gammas", check=lambda v: _factors(v)[1],
                       metavar="G1,G2,...")
    schedule_unit: str = option("epoch", "what milestones and warm-up count: epochs or optimizer "
                              "steps (iter)", flag="--schedule-unit", choices=("epoch", "iter"))
    warmup_mode: str = option("linear", "warm-up: linear from lr x warmup-factor, or constant at "
                            "it (He et al. 2016, ResNet-110)", flag="--warmup-mode",
                            choices=("linear", "constant"))
    warmup_factor: float = option(0.01, "the warm-up's starting (linear) or whole (constant) "
                                "fraction of lr", flag="--warmup-factor", check=in_range(0, 1))
    plateau_patience: int = option(0, "plateau schedule: epochs without a lower validation error "
                                 "before lr x gamma", flag="--plateau-patience", check=at_least(0))
    val_split: int = option(0, "hold out N training images (drawn by the seed) as the validation "
                          "split: the plateau schedule and the best epoch read it, never the test "
                          "split", flag="--val-split", check=at_least(0), metavar="N")
    clip_grad_norm: float = option(0.0, "clip the gradient's global L2 norm to this (0: off)",
                                 flag="--clip-grad-norm", check=at_least(0))
    init_from: str | None = option(None, "start from these weights (a run directory or a weights "
                                 "file): layers matching in name and shape are copied, the rest "
                                 "reported", flag="--init-from", metavar="RUN_OR_WEIGHTS")
    lr_batch: int = option(0, "the global batch lr is given for: lr scales linearly to the "
                         "run's (batch x processes x accum-steps; Goyal et al. 2017); 0: as given",
                         flag="--lr-batch", check=at_least(0), metavar="B")
    model_options: str = option("", "the model builder's options, e.g. dropout=0.3 or "
                              "drop_path_rate=0.5,drop_path_draw=batch (`convnets info`)",
                              flag="--model-options", check=lambda v: _model_options(v)[1],
                              metavar="K=V,...")
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
    max_pixels: int = option(DEFAULT_MAX_PIXELS, "refuse image files of more pixels than this "
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
        if self.schedule == "exp" and not self.decay_every:
            raise ConfigError.of("decay_every", "the exp schedule needs the epochs between decays")
        n_gammas = len(self.milestone_gammas())
        if self.gammas and n_gammas != len(self.milestones):
            raise ConfigError.of("gammas", f"{n_gammas} factors for {len(self.milestones)} "
                                 "milestones: give one per milestone")
        if self.schedule == "plateau" and not (self.val_split and self.plateau_patience):
            raise ConfigError.of("schedule", "plateau decides on a validation split: give "
                                 "--val-split N and --plateau-patience E (never the test split)")
        if self.snapshot_ensemble and self.epochs % self.snapshot_ensemble:
            raise ConfigError.of("snapshot_ensemble", f"{self.snapshot_ensemble} must divide the "
                                 f"{self.epochs} epochs (each cycle is a whole number of epochs)")

    def milestone_gammas(self) -> list[float]:
        """The factor at each milestone: ``gammas``, or ``gamma`` at every one."""
        return _factors(self.gammas)[0] or [self.gamma] * len(self.milestones)

    def model_kwargs(self) -> dict[str, Any]:
        """``model_options`` as the builder's keyword arguments."""
        return _model_options(self.model_options)[0]

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
# The papers' recipes live in engine/recipes.py; these names are read from there so that
# ``from convnets.engine.config import RECIPES, recipe_config`` keeps working.
_RECIPE_NAMES = ("Recipe", "RECIPES", "SCHEDULE_FIELDS", "list_recipes", "recipe_config")


def __getattr__(name: str) -> Any:
    if name in _RECIPE_NAMES:
        from . import recipes

        return getattr(recipes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
