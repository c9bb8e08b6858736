"""The `convnets` command: listing, summaries, and one-line errors."""
import os
import re
import subprocess
import sys

import pytest

from convnets.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_models_lists_the_gunn_family_with_counts(capsys):
    code, out, _ = run(capsys, "models", "unn")
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:] if line and not line.startswith(" ")}
    for name, params in [("gunn15", "1,585,746"), ("sunn15", "1,585,746"), ("gunn24", "29,534,106"),
                         ("sunn24", "29,534,106"), ("gunn18", "28,909,736"), ("sunn18", "28,909,736"),
                         ("wide_gunn18", "45,624,936"), ("wide_sunn18", "45,624,936")]:
        assert rows[name][1] == params
    # GUNN and SUNN cost the same FLOPs (Section 3.2)
    assert rows["gunn15"][2] == rows["sunn15"][2]


def test_summary_total_equals_the_paper(capsys):
    code, out, _ = run(capsys, "summary", "gunn18")
    assert code == 0
    total = [line for line in out.splitlines() if line.startswith("total")][0]
    assert "28,909,736" in total
    # the rows add up to the total
    rows = [line for line in out.splitlines() if re.match(r"^(stem|features|fc)", line)]
    assert sum(int(line.split()[-2].replace(",", "")) for line in rows) == 28_909_736


def test_summary_at_another_input_size(capsys):
    code, out, _ = run(capsys, "summary", "gunn15", "--input-size", "3x64x64", "--depth", "1")
    assert code == 0 and "input 3x64x64" in out
    assert re.search(r"features\s+Sequential\s+360x16x16", out)


@pytest.mark.parametrize("argv,message", [
    (["summary", "gunn16"], "unknown model 'gunn16'; did you mean"),
    (["summary", "gunn15", "--input-size", "3xbig"], "is not S, HxW or CxHxW"),
    (["summary", "gunn18", "--input-size", "8"], "does not fit the model"),
    (["summary", "gunn15", "--depth", "0"], "--depth"),
    (["models", "--colour"], "unrecognized arguments"),
    (["models", "zzz"], "no model matches"),
    (["frobnicate"], "invalid choice"),
    (["train", "--preset", "nosuch"], "--preset 'nosuch' is unknown; choose from"),
    (["train", "--max-pixels", "0"], "--max-pixels must be at least 1"),
    (["train", "--milestones", "5,3"], "--milestones must be positive epochs in non-decreasing"),
    (["export-images", "digits", "never-written", "--per-class", "0"], "--per-class must be at least 1"),
])
def test_user_errors_are_one_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_module_entry_point_and_help():
    proc = subprocess.run([sys.executable, "-m", "convnets", "summary", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--input-size" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "convnets", "info", "nope"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("convnets: error: unknown model")


def test_eval_names_the_model_and_the_members_of_an_ensemble(digits04_run, tmp_path, capsys):
    code, out, err = run(capsys, "eval", digits04_run, "--out", str(tmp_path))
    assert code == 0, err
    assert out.splitlines()[0].startswith("resnet20, center crops, ")
    code, out, err = run(capsys, "eval", digits04_run, digits04_run, "--out", str(tmp_path))
    assert code == 0, err
    assert out.splitlines()[0].startswith("ensemble of 2 (resnet20 x2), center crops, ")


def _interrupt_after_the_first_epoch(monkeypatch):
    from convnets.engine import logs

    def interrupt(row, epochs):  # called once the epoch's checkpoint is committed
        raise KeyboardInterrupt

    monkeypatch.setattr(logs, "epoch_line", interrupt)


_TINY = ["train", "lenet5", "--data", "synthetic:32", "--epochs", "2", "--batch-size", "16",
         "--device", "cpu", "--workers", "0"]


def test_an_interrupted_training_says_how_to_continue_it(tmp_path, capsys, monkeypatch):
    run_dir = str(tmp_path / "run")
    with monkeypatch.context() as patch:
        _interrupt_after_the_first_epoch(patch)
        code, _, err = run(capsys, *_TINY, "--out", run_dir)
    assert code == 130
    assert err == f"convnets: interrupted; continue with `convnets train --resume {run_dir}`\n"
    code, out, err = run(capsys, "train", "--resume", run_dir)
    assert code == 0, err
    assert "resuming" in out and "done:" in out


def test_an_interrupted_training_names_its_default_run_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _interrupt_after_the_first_epoch(monkeypatch)
    code, _, err = run(capsys, *_TINY)
    assert code == 130
    (run_dir,) = os.listdir("runs")
    assert err.endswith(f"--resume {os.path.join('runs', run_dir)}`\n")


def test_an_interrupt_before_a_checkpoint_is_plain(tmp_path, capsys, monkeypatch):
    from convnets.engine import train

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "fit", interrupt)
    code, _, err = run(capsys, *_TINY, "--out", str(tmp_path / "run"))
    assert code == 130 and err == "convnets: interrupted\n"
