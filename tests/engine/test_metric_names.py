"""Error rates are named as errors everywhere a user reads them: metrics.jsonl,
TensorBoard, eval.json, `eval --json`, evaluate() and ModelInfo; old runs keep reading."""
import json
import os

import pytest

import convnets
from convnets.cli import main
from convnets.engine.logs import read_history, write_history

ERR_KEYS = {"train_top1_err", "test_top1_err", "test_top5_err", "best_test_top1_err"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("names") / "run")
    assert main(["train", "lenet5", "--data", "synthetic:32", "--epochs", "1", "--batch-size", "16",
                 "--workers", "0", "--out", out, "--device", "cpu"]) == 0
    return out


def test_metrics_and_tensorboard_name_errors_as_errors(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    row = json.loads(open(os.path.join(run, "metrics.jsonl")).readline())
    assert ERR_KEYS <= set(row) and not {"train_top1", "test_top1", "test_top5"} & set(row)
    events = EventAccumulator(os.path.join(run, "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert ERR_KEYS <= tags and "test_top1" not in tags


def test_eval_json_and_the_python_api_name_errors(run, capsys):
    capsys.readouterr()
    assert main(["eval", run, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {"top1_err", "top5_err", "loss", "per_class_acc"} <= set(summary)
    assert "top1" not in summary
    # The errors are errors: top-1 error plus accuracy on the images is 100%.
    correct = sum(a * n for a, n in zip(summary["per_class_acc"],
                                        [sum(r) for r in summary["confusion"]]) if a is not None)
    assert summary["top1_err"] == pytest.approx(100 - correct / summary["n"])
    assert json.load(open(os.path.join(run, "eval.json")))["top1_err"] == summary["top1_err"]
    info = convnets.model_info("resnet50")
    assert (info.top1_err, info.top5_err) == (23.87, 7.14) and not hasattr(info, "top1")


def test_old_metrics_files_keep_reading(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1, "lr": 0.1, "train_loss": 2.0, "train_top1": 50.0, '
                    '"test_loss": NaN, "test_top1": 40.0, "test_top5": 9.0}\n'
                    '{"epoch": 2, "lr": 0.1, "train_loss": 1.0, "train_top1": 30.0, '
                    '"test_loss": 1.5, "test_top1": 35.0, "test_top5": 8.0}\n')
    rows = read_history(str(path))
    assert [r["test_top1_err"] for r in rows] == [40.0, 35.0]
    assert rows[1]["best_epoch"] == 2 and "test_top1" not in rows[0]
    # Written back, a non-finite number is JSON null, which strict readers accept.
    write_history(str(path), rows)
    text = path.read_text()
    assert "NaN" not in text and json.loads(text.splitlines()[0])["test_loss"] is None
    assert read_history(str(path))[0]["test_loss"] != read_history(str(path))[0]["test_loss"]  # NaN
