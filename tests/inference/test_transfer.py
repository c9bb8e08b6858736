"""Transfer: the mechanics of the few-shot experiment on tiny settings."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Subset

from convnets.cli import main
from convnets.data import open_dataset
from convnets.errors import ConfigError
from convnets.inference.predict import Predictor
from convnets.inference.transfer import draw_shots, extract_features, fit_linear, transfer


@pytest.fixture(scope="module")
def source(digits04_run):
    return Predictor.from_target(digits04_run, device="cpu")


def _split(source, split, spec="digits:5-9"):
    return open_dataset(spec, split, input_size=source.input_size, train_transform=False,
                        preset=source.preset, normalisation=(source.mean, source.std))


def test_shots_are_n_per_class_distinct_and_reproducible():
    targets = [0] * 10 + [1] * 7 + [2] * 3
    idx = draw_shots(targets, 3, 3, np.random.default_rng(4))
    assert len(idx) == len(set(idx)) == 9 and idx == sorted(idx)
    assert np.bincount(np.asarray(targets)[idx]).tolist() == [3, 3, 3]
    assert idx == draw_shots(targets, 3, 3, np.random.default_rng(4))
    assert idx != draw_shots(targets, 3, 3, np.random.default_rng(5))
    with pytest.raises(ConfigError, match="4 is more than the 3 training images of class 2"):
        draw_shots(targets, 4, 3, np.random.default_rng(0))


def test_shots_come_from_the_training_split_never_the_test_split(source):
    train, test = _split(source, "train"), _split(source, "test")
    test_images = {tuple(test.raw_image(i).flatten().tolist()) for i in range(len(test))}
    for seed in range(3):
        for i in draw_shots(train.targets, 6, 5, np.random.default_rng(seed)):
            assert tuple(train.raw_image(i).flatten().tolist()) not in test_images


def test_features_are_the_frozen_penultimate_layer(source):
    data = Subset(_split(source, "test"), range(20))
    before = {k: v.clone() for k, v in source.model.state_dict().items()}
    source.model.train()  # extract_features must switch to eval mode itself
    feats, labels = extract_features(source.model, DataLoader(data, batch_size=8), source.device)
    assert not source.model.training
    after = source.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics included
    x = torch.stack([data[i][0] for i in range(20)])
    with torch.no_grad():
        pooled = source.model.forward_features(x).mean((2, 3))  # ResNet: global average pool
    torch.testing.assert_close(feats, pooled)
    assert feats.shape == (20, source.model.num_features)
    assert labels.tolist() == [data[i][1] for i in range(20)]


def test_the_linear_classifier_separates_separable_features():
    g = torch.Generator().manual_seed(0)
    centres = 4 * torch.randn(3, 16, generator=g)
    labels = torch.arange(3).repeat_interleave(6)
    feats = centres[labels] + torch.randn(18, 16, generator=g)
    test_labels = torch.arange(3).repeat_interleave(50)
    test = centres[test_labels] + torch.randn(150, 16, generator=g)
    predict = fit_linear(feats, labels)
    assert (predict(test) == test_labels.numpy()).mean() > 0.97
    assert set(predict(test).tolist()) == {0, 1, 2}


def test_transfer_reports_every_method_per_draw_and_leaves_the_source_alone(source):
    before = {k: v.clone() for k, v in source.model.state_dict().items()}
    res = transfer(source, "digits:5-9", 2, draws=2, seed=3, steps=2, finetune=True)
    assert res.model == "resnet20" and res.classes == ["5", "6", "7", "8", "9"]
    assert res.seeds == [3, 4] and res.shots == 2 and res.steps == 2
    test = _split(source, "test")
    assert res.test_images == len(test)
    assert set(res.errors) == {"linear", "scratch", "finetune"}
    assert all(len(e) == 2 and all(0 <= v <= 100 for v in e) for e in res.errors.values())
    after = source.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # the linear classifier's error, recomputed step by step for the first draw (seed 3)
    train = _split(source, "train")
    idx = draw_shots(train.targets, 2, 5, np.random.default_rng(3))
    f, y = extract_features(source.model, DataLoader(Subset(train, idx), batch_size=64), source.device)
    tf, ty = extract_features(source.model, DataLoader(test, batch_size=64), source.device)
    assert res.errors["linear"][0] == pytest.approx(100 * (fit_linear(f, y)(tf) != ty.numpy()).mean())
    mean, std = res.mean_std("linear")
    assert mean == pytest.approx(np.mean(res.errors["linear"]))
    assert std == pytest.approx(np.std(res.errors["linear"], ddof=1))
    # --classes selects from the data as digits:CLASSES does
    again = transfer(source, "digits", 2, classes="5-9", draws=1, seed=3, steps=1)
    assert again.errors["linear"][0] == res.errors["linear"][0]


def test_cli_transfer_prints_both_errors_and_json(digits04_run, capsys):
    argv = ["transfer", digits04_run, "--data", "digits:5-9", "--shots", "2", "--draws", "2",
            "--steps", "1", "--device", "cpu"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "5 classes (5, 6, 7, 8, 9), 2 training images each, 2 draws (seeds 0-1)" in out
    assert "linear classifier on frozen features" in out and "trained from scratch" in out
    assert out.count("test top-1 error") == 2 and "fine-tuned" not in out
    assert main(argv + ["--json", "--draws", "1"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["seeds"] == [0] and set(record["summary"]) == {"linear", "scratch"}
    # --no-scratch: the same linear errors, nothing trained
    assert main(argv + ["--json", "--draws", "1", "--no-scratch", "--finetune"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert set(alone["summary"]) == {"linear", "finetune"}
    assert alone["errors"]["linear"] == record["errors"]["linear"]


@pytest.mark.parametrize("extra, message", [
    (["--shots", "0"], "--shots must be a whole number of at least 1"),
    (["--shots", "500"], "500 is more than the"),
    (["--shots", "2", "--classes", "5-12"], "not within 0-9"),
    (["--shots", "2", "--classes", "5"], "at least 2 classes"),
    (["--shots", "2", "--draws", "0"], "--draws must be"),
    (["--shots", "2", "--steps", "0"], "--steps must be"),
])
def test_cli_transfer_bad_input_is_one_line(digits04_run, capsys, extra, message):
    assert main(["transfer", digits04_run, "--data", "digits", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_cli_transfer_needs_shots_and_known_data(digits04_run, capsys):
    assert main(["transfer", digits04_run, "--data", "digits"]) == 2
    assert "--shots" in capsys.readouterr().err
    assert main(["transfer", digits04_run, "--data", "mnist", "--shots", "2"]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'mnist'" in err and err.count("\n") == 1
