"""Options a careless user types: each is refused in one line with exit status 2, before any
work starts, and nothing the user already has is touched."""
import os

import pytest

from convnets.cli import main


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("mine\n")
    return path


@pytest.mark.parametrize("argv, message", [
    (["train", "--warmup", "inf"], "--warmup must be a finite number"),
    (["train", "--lr", "nan"], "--lr must be a finite number"),
    (["train", "--epochs", "0"], "--epochs must be at least 1"),
    (["train", "--batch-size", "-3"], "--batch-size must be at least 1"),
    (["train", "--workers", "-1"], "--workers must be at least 0"),
    (["train", "--input-size", "1x32x32"], "--input-size 1x32x32 does not fit the model"),
    (["train", "alexnet", "--input-size", "16"], "--input-size 3x16x16 does not fit the model"),
])
def test_train_options_are_checked_before_training(argv, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(argv + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()          # refused before a run directory was made


def test_out_naming_an_existing_file_keeps_the_file(a_file, capsys):
    assert main(["train", "--out", str(a_file)]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a run directory" in err and err.count("\n") == 1
    assert a_file.read_text() == "mine\n"


def test_eval_batch_size_zero_is_refused(tmp_path, capsys):
    run = str(tmp_path / "r")
    assert main(["train", "lenet5", "--data", "synthetic:32", "--epochs", "1", "--batch-size", "16",
                 "--out", run, "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["eval", run, "--batch-size", "0"]) == 2
    err = capsys.readouterr().err
    assert "--batch-size must be at least 1" in err and err.count("\n") == 1
    assert not os.path.exists(os.path.join(run, "eval.json"))


def test_a_seed_the_generators_cannot_take_is_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--seed", "1180591620717411303424", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--seed must be between -4294967295 and 4294967295" in err and err.count("\n") == 1
    assert not out.exists()


def test_the_seed_range_holds_for_python_callers_and_config_files(tmp_path):
    from convnets.engine.config import TrainConfig, load_config
    from convnets.errors import ConfigError, RunDirError

    with pytest.raises(ConfigError, match="^seed must be between"):
        TrainConfig(seed=2**64)
    path = tmp_path / "config.json"
    path.write_text('{"seed": 18446744073709551616}')
    with pytest.raises(RunDirError, match="seed must be between"):
        load_config(path)


@pytest.mark.parametrize("seed", [2**32 - 1, -(2**32 - 1)])
def test_every_seed_in_range_seeds_the_loaders_of_a_long_run(seed):
    import torch
    from torch.utils.data import DataLoader

    from convnets.engine.config import TrainConfig
    from convnets.engine.distributed import set_epoch

    assert TrainConfig(seed=seed).seed == seed
    loader = DataLoader(list(range(4)), generator=torch.Generator())
    set_epoch(loader, 10_000, seed, rank=1_000)  # the largest per-epoch seed still fits


@pytest.mark.parametrize("scales", ["0", "256,-1"])
def test_eval_scales_must_be_positive_pixels(digits04_run, capsys, scales):
    assert main(["eval", digits04_run, "--crops", "dense", "--scales", scales]) == 2
    err = capsys.readouterr().err
    assert "--scales" in err and "must be positive whole numbers" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_evaluate_checks_its_scales_before_any_work():
    import torch
    from torch import nn

    from convnets.engine.evaluation import evaluate
    from convnets.errors import ConfigError

    batches = [(torch.zeros(1, 1, 4, 4), torch.zeros(1, dtype=torch.long))]
    with pytest.raises(ConfigError, match="^scales must be positive whole numbers") as info:
        evaluate(nn.Conv2d(1, 2, 1), batches, mode="dense", scales=[0])
    assert "\n" not in str(info.value)


def test_transfer_data_defaults_to_the_digits_as_its_help_says(digits04_run, capsys):
    import json

    assert main(["transfer", digits04_run, "--shots", "1", "--draws", "1", "--steps", "1",
                 "--no-scratch", "--device", "cpu", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["data"] == "digits"


def test_visualize_a_folder_says_the_command_takes_one_image(tmp_path, capsys):
    assert main(["visualize", "occlusion", "resnet20", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path} is a folder; occlusion looks at one image: give an image file" in err
    assert err.count("\n") == 1
