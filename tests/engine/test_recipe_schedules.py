"""Each recipe's learning rate at every epoch (or iteration) equals its paper's rule,
written here from the paper's text rather than from the recipe's fields."""
import math

import pytest

from convnets.engine.config import RECIPES, recipe_config
from convnets.engine.optim import scaled_lr
from convnets.engine.schedules import lr_factor


def _steps(lr, at, factors):
    """lr times each factor whose milestone has passed."""
    return lambda t: lr * math.prod(f for m, f in zip(at, factors) if t >= m)


def _cifar_resnet(warm):
    # He et al. 2016, Sec. 4.2: 0.1, /10 at 32k and 48k iterations; ResNet-110 (and the
    # pre-activation nets) at 0.01 for the first 400 iterations.
    return lambda s: 0.01 if warm and s < 400 else _steps(0.1, (32000, 48000), (0.1, 0.1))(s)


def _inception(global_batch):
    # Szegedy et al. 2016 Sec. 8 / 2017 Sec. 4: 0.045 decayed every two epochs by 0.94,
    # for the paper's global batch; this one process trains with 32 images.
    return lambda e: 0.045 * 32 / global_batch * 0.94 ** (e // 2)


def _digits(s, spe, epochs=20, lr=0.05):
    warm, total = spe, epochs * spe  # one epoch of linear warm-up from lr/100, then cosine
    if s < warm:
        return lr * (0.01 + 0.99 * s / warm)
    return lr * 0.5 * (1 + math.cos(math.pi * (s - warm) / (total - warm)))


# name -> ("epoch", lr of 0-based epoch e) or ("iter", lr of 0-based optimizer step s)
# or ("step", lr of step s given steps per epoch).
PAPER_RULES = {
    "digits": ("step", _digits),
    "gunn-cifar": ("epoch", _steps(0.1, (149, 224), (0.1, 0.1))),
    "gunn-cifar-snapshot": ("step", lambda s, spe: 0.1 * 0.5 * (
        1 + math.cos(math.pi * (s % (50 * spe)) / (50 * spe)))),
    "gunn-imagenet": ("epoch", _steps(0.1, (30, 60), (0.1, 0.1))),
    "gunn-imagenet-released": ("epoch", _steps(0.1, (30, 60, 90), (0.1, 0.1, 0.01))),
    "densenet-imagenet": ("epoch", _steps(0.1, (30, 60), (0.1, 0.1))),
    "resnet-imagenet": ("epoch", _steps(0.1, (30, 60), (0.1, 0.1))),
    "alexnet": ("epoch", _steps(0.01, (30, 60, 80), (0.1, 0.1, 0.1))),
    # LeCun et al. 1998, Sec. III.C: 5e-4 (2 passes), 2e-4 (3), 1e-4 (3), 5e-5 (4), 1e-5,
    # relative to the recipe's SGD rate 0.01.
    "lenet5": ("epoch", lambda e: 0.01 / 5e-4 * (5e-4 if e < 2 else 2e-4 if e < 5 else
                                                 1e-4 if e < 8 else 5e-5 if e < 12 else 1e-5)),
    # Plateau recipes: the starting rate until a validation decision (tested elsewhere).
    "alexnet-plateau": ("epoch", lambda e: 0.01),
    "zfnet": ("epoch", lambda e: 0.01),
    "nin-cifar": ("epoch", lambda e: 0.1),
    "vgg-a": ("epoch", lambda e: 0.01),
    "vgg-d": ("epoch", lambda e: 0.01),
    "vgg-e": ("epoch", lambda e: 0.01),
    "vgg-d-s384": ("epoch", lambda e: 1e-3),
    "vgg-d-jitter": ("epoch", lambda e: 1e-3),
    "resnet-paper": ("epoch", lambda e: 0.1),
    "dpn": ("epoch", lambda e: 0.1 * 32 / 256),
    # GoogLeNet Sec. 6: "decreasing the learning rate by 4% every 8 epochs".
    "googlenet": ("epoch", lambda e: 0.01 * 32 / 256 * 0.96 ** (e // 8)),
    "inception-v3": ("epoch", _inception(1600)),
    "se-inception-v3": ("epoch", _inception(1600)),
    "inception-v4": ("epoch", _inception(640)),
    "inception-resnet-v2": ("epoch", _inception(640)),
    "resnet-cifar": ("iter", _cifar_resnet(warm=False)),
    "resnet110-cifar": ("iter", _cifar_resnet(warm=True)),
    "preact-resnet164-cifar": ("iter", _cifar_resnet(warm=True)),
    "preact-resnet1001-cifar": ("iter", _cifar_resnet(warm=True)),
    "preact-resnet200": ("epoch", _steps(0.1, (30, 60), (0.1, 0.1))),
    # Zagoruyko & Komodakis Sec. 3: 0.1, x0.2 at 60, 120 and 160 of 200 epochs.
    "wrn28-10": ("epoch", _steps(0.1, (60, 120, 160), (0.2, 0.2, 0.2))),
    "wrn40-10": ("epoch", _steps(0.1, (60, 120, 160), (0.2, 0.2, 0.2))),
    "resnext-imagenet": ("epoch", _steps(0.1, (30, 60, 90), (0.1, 0.1, 0.1))),
    "resnext29-cifar": ("epoch", _steps(0.1, (150, 225), (0.1, 0.1))),
    "stochastic-depth-cifar": ("epoch", _steps(0.1, (250, 375), (0.1, 0.1))),
    "densenet-bc-cifar": ("epoch", _steps(0.1, (150, 225), (0.1, 0.1))),
    "densenet-bc-cifar-noaug": ("epoch", _steps(0.1, (150, 225), (0.1, 0.1))),
    # Hu et al. Sec. 6.1: 0.6 for batch 1024, /10 every 30 epochs; here batch 256.
    "senet": ("epoch", lambda e: 0.6 * 256 / 1024 * 0.1 ** (e // 30)),
}


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_epoch_of_the_recipe_runs_at_its_papers_rate(name):
    assert name in PAPER_RULES, f"recipe {name} needs its paper's rule in PAPER_RULES"
    kind, rule = PAPER_RULES[name]
    cfg = recipe_config(name)
    spe = 390 if kind == "iter" else 7  # CIFAR at batch 128: 390 steps per epoch
    f, lr = lr_factor(cfg, spe), scaled_lr(cfg)
    for e in range(cfg.epochs):
        steps = range(e * spe, (e + 1) * spe) if kind == "iter" else (e * spe, e * spe + spe - 1)
        for s in steps:
            want = rule(s) if kind == "iter" else rule(s, spe) if kind == "step" else rule(e)
            assert lr * f(s) == pytest.approx(want, rel=1e-9), (name, e, s)


def test_iteration_recipes_stop_where_the_paper_does():
    # 64k iterations (He et al. 2016, Sec. 4.2): 164 epochs of 390 steps, the last epoch
    # in which the paper's run still trains.
    for name in ("resnet-cifar", "resnet110-cifar", "preact-resnet164-cifar"):
        cfg = recipe_config(name)
        assert (cfg.epochs - 1) * 390 < 64000 <= cfg.epochs * 390 + 390, name


def test_every_recipe_names_its_papers_error_and_protocol():
    for recipe in RECIPES.values():
        if recipe.name != "digits":
            assert recipe.reported and recipe.protocol and recipe.source, recipe.name
