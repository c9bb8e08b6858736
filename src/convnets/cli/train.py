"""``convnets train`` and ``convnets recipes``. Every training flag is generated from its
:class:`~convnets.engine.config.TrainConfig` field (type, choices, help, checks)."""
from __future__ import annotations

import argparse
import os

from .common import Interrupted, UserError, add_option_flags

__all__ = ["register"]


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model (default: ResNet-20 on the built-in digits)")
    p.add_argument("model", nargs="?", help="model name (default: the recipe's model)")
    p.add_argument("--recipe", help="named hyper-parameters (default digits; `convnets recipes`)")
    p.add_argument("--out", help="run directory (default runs/MODEL-TIMESTAMP)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    from ..engine.config import train_options

    add_option_flags(p, train_options(), defaults=False)
    p.set_defaults(func=run_train)


def register_recipes(sub) -> None:
    p = sub.add_parser("recipes", help="the papers' training recipes and the data presets")
    p.set_defaults(func=run_recipes)


def _run_dir(args: argparse.Namespace, model: str) -> str | None:
    """Where the run is written. A new run without ``--out`` is named here, so that an
    interrupted one can be named too; in a data-parallel job fit() names it, once for all
    processes."""
    from ..engine.train import default_run_dir

    if args.resume or args.out:
        return args.resume or args.out
    return default_run_dir(model) if os.environ.get("WORLD_SIZE", "1") == "1" else None


def _continue_hint(run_dir: str | None) -> str | None:
    """How to continue an interrupted run, when it has a checkpoint to continue from."""
    from ..engine.checkpoint import latest_checkpoint
    from ..errors import ConvnetsError

    if run_dir is None:
        return None
    try:
        latest_checkpoint(run_dir)
    except ConvnetsError:
        return None
    return f"continue with `convnets train --resume {run_dir}`"


def run_train(args: argparse.Namespace) -> None:
    from ..engine.config import load_config, recipe_config, train_options
    from ..engine.train import fit

    given = {f.name: getattr(args, f.name) for f, _, _ in train_options()
             if getattr(args, f.name) is not None}
    if args.model is not None:
        given["model"] = args.model
    if args.resume:
        if args.recipe or args.out:
            raise UserError(f"--resume continues a run with its saved config; "
                            f"{'--recipe' if args.recipe else '--out'} cannot be given with it")
        # fit() refuses changes to anything but the fields that may change on resume.
        cfg = load_config(os.path.join(args.resume, "config.json")) if os.path.isdir(args.resume) else None
        if cfg is None:
            raise UserError(f"run directory not found: {args.resume}")
        cfg = cfg.replace(**given)
    else:
        cfg = recipe_config(args.recipe or "digits", **given)
    run_dir = _run_dir(args, cfg.model)
    try:
        result = fit(cfg, run_dir, resume=bool(args.resume))
    except KeyboardInterrupt:
        hint = _continue_hint(run_dir)
        if hint is None:
            raise
        raise Interrupted(hint) from None
    last, best = result["last"], result["best"]
    if last is not None:
        print(f"done: {result['run_dir']}  test top-1 error {last['test_top1_err']:.2f}%  "
              f"top-5 error {last['test_top5_err']:.2f}%  (last epoch, {last['epoch']}); "
              + _best_text(best, result["best_by"]))


def _schedule_text(cfg) -> str:
    """The schedule in one phrase, from the configuration's own fields."""
    unit = " iterations" if cfg.schedule_unit == "iter" else ""
    if cfg.schedule == "step":
        factors = cfg.milestone_gammas()
        if len(set(factors)) <= 1:
            text = f"step /{1 / cfg.gamma:g} at {', '.join(map(str, cfg.milestones))}{unit}"
        else:
            text = "step " + ", ".join(f"x{g:g} at {m}" for m, g in zip(cfg.milestones, factors)) + unit
    elif cfg.schedule == "exp":
        text = f"x{cfg.gamma:g} every {cfg.decay_every:g} epochs"
    elif cfg.schedule == "plateau":
        text = (f"/{1 / cfg.gamma:g} after {cfg.plateau_patience} epochs without a lower error "
                f"on {cfg.val_split} held-out training images")
    else:
        text = "cosine"
    if cfg.warmup_epochs:
        text += (f", {cfg.warmup_epochs:g}{unit or ' epochs'} of {cfg.warmup_mode} warm-up "
                 f"at lr x {cfg.warmup_factor:g}")
    return text


def _optimizer_text(cfg) -> str:
    from ..engine.optim import scaled_lr

    if cfg.optimizer == "rmsprop-tf":
        text = (f"RMSProp (TensorFlow's: decay {cfg.rmsprop_decay:g}, epsilon {cfg.rmsprop_eps:g}, "
                f"momentum {cfg.momentum:g})")
    else:
        text = f"SGD, momentum {cfg.momentum} {'Nesterov' if cfg.nesterov else 'plain'}"
    text += f" lr {cfg.lr:g}"
    if cfg.lr_batch:
        text += (f" for a global batch of {cfg.lr_batch}, scaled linearly to the run's "
                 f"(batch x processes x accum-steps; one process: {scaled_lr(cfg):.4g})")
    return text + f", weight decay {cfg.weight_decay:g}"


def recipe_lines(recipe) -> list[str]:
    """What `convnets recipes` prints for one recipe."""
    from ..engine.config import TrainConfig

    cfg = TrainConfig(**recipe.settings)
    extras = [f"{name} {value:g}" for name, value in (
        ("gradient clipping at", cfg.clip_grad_norm), ("label smoothing", cfg.label_smoothing),
        ("EMA of the weights, decay", cfg.ema)) if value]
    if cfg.model_options:
        extras.append(f"model options {cfg.model_options}")
    lines = [f"{recipe.name}  ({recipe.source})",
             f"  model {cfg.model}, data preset {cfg.preset or 'the dataset default'}, "
             f"{cfg.epochs} epochs, batch {cfg.batch_size}",
             f"  {_optimizer_text(cfg)}, schedule {_schedule_text(cfg)}"]
    if extras:
        lines.append(f"  {'; '.join(extras)}")
    if recipe.reported:
        lines.append(f"  paper: {recipe.reported}; protocol {recipe.protocol}")
    if recipe.notes:
        lines.append(f"  {recipe.notes}")
    return lines


def _best_text(best: dict, best_by: str) -> str:
    if best_by == "validation":  # chosen on the held-out split, never on the test split
        return (f"best (by validation) epoch {best['epoch']}: validation top-1 error "
                f"{best['val_top1_err']:.2f}%, test {best['test_top1_err']:.2f}%")
    return f"best top-1 error {best['test_top1_err']:.2f}% at epoch {best['epoch']}"


def run_recipes(args: argparse.Namespace) -> None:
    from ..data import list_presets
    from ..engine.config import RECIPES

    for recipe in RECIPES.values():
        print("\n".join(recipe_lines(recipe)))
        print()
    print("data presets (--preset):")
    for name, text in list_presets().items():
        print(f"  {name:<10} {text}")
