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
