"""One definition per option: TrainConfig's fields, their checks, the flags generated from
them, the resume rules enforced by fit(), and errors that name what is wrong."""
import dataclasses
import json
import os

import pytest
import torch
from torch.utils.data import Subset

from convnets.cli import build_parser, main
from convnets.data import open_dataset
from convnets.engine.config import (RECIPES, SCHEDULE_FIELDS, TrainConfig, load_config,
                                    recipe_config, train_options)
from convnets.engine.train import fit
from convnets.errors import ConfigError, RunDirError

SIZE = (1, 32, 32)


def test_the_defaults_are_the_digits_recipe():
    assert TrainConfig() == recipe_config("digits")
    assert TrainConfig().recipe == "digits"


def test_every_paper_recipe_sets_its_whole_schedule():
    # Otherwise a recipe would silently inherit the small default's warm-up or cosine.
    for recipe in RECIPES.values():
        if recipe.name != "digits":
            missing = [f for f in SCHEDULE_FIELDS if f not in recipe.settings]
            assert not missing, (recipe.name, missing)


def test_train_flags_are_generated_from_the_fields():
    parser = build_parser()
    train = next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == "train")[1]
    dests = {a.dest for a in train._actions}
    flagged = {f.name for f, _, _ in train_options()}
    assert flagged <= dests
    # Every field is a flag, except the model (positional) and the recipe's own name.
    assert {f.name for f in dataclasses.fields(TrainConfig)} - flagged == {"model", "recipe"}
    # Each flag parses into the field's own value.
    args = parser.parse_args(["train", "--wd", "0.001", "--milestones", "3,5", "--no-nesterov",
                              "--ema", "--input-size", "1x16x16", "--schedule", "step"])
    cfg = recipe_config("digits", **{f.name: getattr(args, f.name) for f, _, _ in train_options()})
    assert (cfg.weight_decay, cfg.milestones, cfg.nesterov, cfg.ema, cfg.input_size) == \
        (0.001, [3, 5], False, 0.999, [1, 16, 16])


@pytest.mark.parametrize("field, value, text", [
    ("weight_decay", -1.0, "weight_decay must be at least 0"),
    ("warmup_epochs", float("inf"), "warmup_epochs must be a finite number"),
    ("epochs", "3", "epochs must be a whole number"),
    ("epochs", True, "epochs must be a whole number"),
    ("milestones", None, "milestones must be given"),
    ("milestones", [5, 3], "milestones must be positive epochs in non-decreasing order"),
    ("model", 5, "model must be a string"),
    ("nesterov", 1, "nesterov must be true or false"),
    ("schedule", "linear", "schedule must be one of step, cosine"),
    ("input_size", [2, 8, 8], "input_size must be (C, H, W)"),
])
def test_library_errors_name_the_field_and_the_cli_names_the_flag(field, value, text, capsys):
    with pytest.raises(ConfigError) as err:
        TrainConfig(**{field: value})
    assert str(err.value).startswith(text) and "--" not in str(err.value)
    assert err.value.option == field


def test_cli_speaks_of_flags(capsys):
    assert main(["train", "--wd", "-1"]) == 2
    assert capsys.readouterr().err.strip() == "convnets: error: --wd must be at least 0, got -1.0"
    assert main(["train", "--warmup", "inf"]) == 2
    assert "--warmup must be a finite number" in capsys.readouterr().err


@pytest.mark.parametrize("edit, text", [
    ({"model": 5}, "model must be a string"),
    ({"epochs": "3"}, "epochs must be a whole number"),
    ({"milestones": None}, "milestones must be given"),
])
def test_a_tampered_config_json_is_one_line(tmp_path, edit, text):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**TrainConfig().to_dict(), **edit}))
    with pytest.raises(RunDirError, match=text):
        load_config(path)
    path.write_text("[1, 2]")
    with pytest.raises(RunDirError, match="does not hold a configuration"):
        load_config(path)


@pytest.fixture(scope="module")
def tiny_digits():
    train = open_dataset(None, "train", input_size=SIZE, train_transform=True)
    test = open_dataset(None, "test", input_size=SIZE, train_transform=False)
    return Subset(train, range(16)), Subset(test, range(16))


def _cfg(**kw):
    return TrainConfig(**{**dict(model="lenet5", epochs=2, batch_size=8, lr=0.01, device="cpu",
                                 workers=0, input_size=[1, 32, 32]), **kw})


def test_fit_enforces_the_resume_rules(tmp_path, tiny_digits):
    run = str(tmp_path / "run")
    fit(_cfg(), run, until_epoch=1, datasets=tiny_digits, log=lambda _: None)
    with pytest.raises(ConfigError, match="lr cannot change on resume") as err:
        fit(_cfg(lr=0.02), run, resume=True, datasets=tiny_digits, log=lambda _: None)
    assert err.value.option == "lr"
    assert json.load(open(os.path.join(run, "config.json")))["lr"] == 0.01  # nothing written
    # What does not change the computation may change.
    result = fit(_cfg(device="cpu", workers=0), run, resume=True, datasets=tiny_digits,
                 log=lambda _: None)
    assert [r["epoch"] for r in result["history"]] == [1, 2]


def test_unknown_builder_options_are_found_by_the_signature():
    import convnets

    with pytest.raises(ConfigError, match="resnet20 has no option 'dropout'; it takes drop_path_rate"):
        convnets.create_model("resnet20", dropout=0.5)


def test_a_bug_inside_a_builder_is_not_turned_into_a_user_error(monkeypatch):
    import convnets
    from convnets.models import registry

    def broken(*, num_classes=10):
        raise TypeError("a bug")

    monkeypatch.setitem(registry._BUILDERS, "resnet20", broken)
    with pytest.raises(TypeError, match="a bug"):
        convnets.create_model("resnet20")


def test_the_cli_shows_a_bug_with_its_traceback(monkeypatch):
    from convnets.models import registry

    def broken(pattern=None):
        raise ValueError("a bug, not the user's input")

    monkeypatch.setattr(registry, "list_models", broken)
    monkeypatch.setattr("convnets.models.list_models", broken)
    with pytest.raises(ValueError, match="a bug"):
        main(["models"])


def test_best_epoch_is_recorded_beside_the_last():
    from convnets.engine.logs import best_row, with_best

    rows = with_best([{"epoch": 1, "test_top1_err": 5.0}, {"epoch": 2, "test_top1_err": 3.0},
                      {"epoch": 3, "test_top1_err": float("nan")}, {"epoch": 4, "test_top1_err": 4.0}])
    assert [(r["best_test_top1_err"], r["best_epoch"]) for r in rows] == \
        [(5.0, 1), (3.0, 2), (3.0, 2), (3.0, 2)]
    assert best_row(rows)["epoch"] == 2
