"""Every recipe, run: it trains a few steps from the command line on synthetic data and
on the digits, writes a run that `eval`, `predict` and `--resume` accept, and resumes
bit-exactly on the CPU with --deterministic (its optimizer and schedule states included);
and every recipe's own model, with the recipe's model options, takes a training step.

Parametrized over the recipes table, so a new recipe is covered by adding it. The runs
keep the recipe's every setting but, where its model is large (over 5M parameters, or an
Inception net whose auxiliary head needs 299 pixels), train ResNet-20 in its place, with
those of the recipe's model options it takes: the 2-core test machine would otherwise
spend minutes per recipe. The recipe's own model, with all its options, is then exercised
by the one-step test."""
import os

import pytest
import torch
from PIL import Image

from convnets.cli import main
from convnets.engine import checkpoint as ckpt
from convnets.engine.config import RECIPES, load_config, recipe_config
from convnets.engine.train import fit
from convnets.models import create_model, model_info
from convnets.models.meta import check_input_size
from convnets.models.registry import builder_options

NAMES = list(RECIPES)
LARGE = 5_000_000


def _smallest_side(model: str, **options) -> int:
    """The smallest square input the model trains at (auxiliary heads included)."""
    channels = model_info(model).input_size[0]
    net = create_model(model, num_classes=2, **options).train()
    for side in (8, 16, 32, 48, 64, 75, 299):
        try:
            check_input_size(model, (channels, side, side), num_classes=2)
            with torch.no_grad():
                net(torch.zeros(2, channels, side, side))
            return side
        except (ValueError, RuntimeError):
            continue
    raise AssertionError(f"{model} takes no small input")


def _run_model(name: str) -> tuple[str, str]:
    """(model, model options) the runs train: the recipe's, or a small stand-in."""
    cfg = recipe_config(name)
    with torch.device("meta"):
        params = sum(p.numel() for p in create_model(cfg.model).parameters())
    if params <= LARGE and cfg.model_input_size()[1] < 299:
        return cfg.model, cfg.model_options
    stand_in = "resnet20"
    kept = {k: v for k, v in cfg.model_kwargs().items() if k in builder_options(stand_in)}
    return stand_in, ",".join(f"{k}={v}" for k, v in kept.items())


def _flags(name: str) -> list[str]:
    cfg = recipe_config(name)
    model, options = _run_model(name)
    side, channels = _smallest_side(model), model_info(model).input_size[0]
    flags = ["--recipe", name, "--model-options", options, "--input-size",
             f"{channels}x{side}x{side}", "--device", "cpu", "--deterministic", "--workers", "0"]
    if model != cfg.model:
        flags = [model, *flags]
    if cfg.val_split:  # the recipe's held-out split, at the scale of these few images
        flags += ["--val-split", "4"]
    if cfg.snapshot_ensemble:  # cycles must divide the few epochs
        flags += ["--snapshot-ensemble", "1"]
    return flags


def _weights(run_dir):
    record = ckpt.latest_checkpoint(run_dir)
    return ckpt.load_weights_file(os.path.join(record["dir"], "model.safetensors")), record


@pytest.mark.parametrize("name", NAMES)
def test_recipe_trains_resumes_bit_exactly_and_evaluates(name, tmp_path, capsys):
    whole, split = str(tmp_path / "whole"), str(tmp_path / "split")
    argv = ["train", *_flags(name), "--data", "synthetic:12", "--epochs", "2",
            "--batch-size", "4"]
    assert main([*argv, "--out", whole]) == 0, capsys.readouterr().err
    cfg = load_config(os.path.join(whole, "config.json"))
    assert cfg.recipe == name
    fit(cfg, split, until_epoch=1, log=lambda _: None)
    assert main(["train", "--resume", split]) == 0, capsys.readouterr().err
    (a, record_a), (b, record_b) = _weights(whole), _weights(split)
    assert record_a["epoch"] == record_b["epoch"] == 2
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    state_a = torch.load(os.path.join(record_a["dir"], "state.pt"), weights_only=True)
    state_b = torch.load(os.path.join(record_b["dir"], "state.pt"), weights_only=True)
    assert state_a["scheduler"] == state_b["scheduler"]
    assert state_a["optimizer"]["state"].keys() == state_b["optimizer"]["state"].keys()
    for key, value in state_a["optimizer"]["state"].items():
        assert all(torch.equal(value[k], state_b["optimizer"]["state"][key][k]) for k in value)
    assert main(["eval", whole]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("name", NAMES)
def test_recipe_trains_on_the_digits_and_predicts(name, tmp_path, capsys):
    run = str(tmp_path / "digits")
    argv = ["train", *_flags(name), "--data", "digits:0,1", "--epochs", "1", "--batch-size", "64",
            "--out", run]
    assert main(argv) == 0, capsys.readouterr().err
    image = tmp_path / "digit.png"
    Image.new("L", (8, 8), 200).save(image)
    capsys.readouterr()
    assert main(["predict", run, str(image), "--topk", "1"]) == 0, capsys.readouterr().err
    assert "digit.png" in capsys.readouterr().out


@pytest.mark.parametrize("name", NAMES)
def test_the_recipes_own_model_takes_a_training_step(name):
    cfg = recipe_config(name)
    torch.manual_seed(0)
    side = _smallest_side(cfg.model, **cfg.model_kwargs())
    model = create_model(cfg.model, num_classes=3, **cfg.model_kwargs()).train()
    from convnets.engine.optim import build_optimizer

    optimizer = build_optimizer(model, cfg)
    out = model(torch.randn(2, model_info(cfg.model).input_size[0], side, side))
    logits = out[0] if isinstance(out, tuple) else out
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    before = next(model.parameters()).detach().clone()
    optimizer.step()
    assert not torch.equal(before, next(model.parameters()))
