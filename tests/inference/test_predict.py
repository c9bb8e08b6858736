"""Predict: the same answers as evaluation, for every image a user has, and one line per
bad input."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import convnets
from convnets.cli import main
from convnets.data import open_dataset
from convnets.data.export import export_images, to_pil
from convnets.engine.inference_spec import INFERENCE_FILE
from convnets.errors import DataError, RunDirError
from convnets.inference.predict import Prediction, Predictor


@pytest.fixture(scope="module")
def predictor(digits04_run):
    return Predictor.from_target(digits04_run, device="cpu")


@pytest.fixture(scope="module")
def test_split(predictor):
    return open_dataset("digits:0-4", "test", input_size=predictor.input_size,
                        train_transform=False)


def _direct(predictor, x: torch.Tensor) -> torch.Tensor:
    """The model's softmax on already preprocessed inputs, computed here by hand."""
    with torch.no_grad():
        return torch.softmax(predictor.model(x), 1)


def _digit(test_split, i: int, size=(40, 30)) -> Image.Image:
    """Test digit i as an 8-bit RGB image of another size (bilinear from 8x8)."""
    return to_pil(test_split.raw_image(i)).convert("RGB").resize(size, Image.BILINEAR)


# --- the interface -----------------------------------------------------------------------------

def test_predictor_describes_the_run(predictor, test_split):
    assert predictor.model_name == "resnet20" and predictor.classes == ["0", "1", "2", "3", "4"]
    assert predictor.model.num_classes == 5 and not predictor.model.training
    assert predictor.input_size == (3, 8, 8) and predictor.preset == "digits"
    # the normalisation is the digits' own, as training used, one value per input channel
    assert predictor.mean == (test_split.mean[0],) * 3 and predictor.std == (test_split.std[0],) * 3
    assert predictor.device == torch.device("cpu")


def test_predictions_of_exported_files_equal_the_evaluation_of_the_test_split(
        predictor, test_split, tmp_path):
    export_images("digits:0-4", str(tmp_path / "png"))
    preds = predictor.predict(str(tmp_path / "png"), topk=5)
    assert len(preds) == len(test_split) and all(isinstance(p, Prediction) for p in preds)
    x = torch.stack([test_split[i][0] for i in range(len(test_split))])
    expected = _direct(predictor, x)
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in (predictor.mean, predictor.std))
    for p in preds:
        i = int(os.path.basename(p.source).split(".")[0])  # export names files by index
        assert os.path.basename(os.path.dirname(p.source)) == test_split.classes[test_split.targets[i]]
        assert list(p.probabilities) == sorted(p.probabilities, reverse=True)
        assert list(p.classes) == [predictor.classes[k] for k in p.indices]
        # The PNG holds the digit rounded to 8 bits: the probabilities are the model's on those
        # 8-bit pixels, read here by hand (8x8, the input size: nothing to resize) ...
        pixels = np.asarray(Image.open(p.source).convert("RGB"), dtype=np.float32) / 255
        by_hand = _direct(predictor, ((torch.from_numpy(pixels).permute(2, 0, 1) - mean) / std)[None])[0]
        got = torch.zeros(5).index_put_((torch.tensor(p.indices),), torch.tensor(p.probabilities))
        torch.testing.assert_close(got, by_hand, atol=1e-5, rtol=0)
    # ... and the rounding moves no answer of the evaluation's.
    agree = sum(p.indices[0] == int(expected[int(os.path.basename(p.source)[:-4])].argmax())
                for p in preds)
    assert agree >= 0.99 * len(preds)


def test_preprocess_is_the_evaluation_transform(predictor, test_split):
    raw = test_split.raw_image(7)  # the (1, 8, 8) digit in [0, 1], as the dataset holds it
    torch.testing.assert_close(predictor.preprocess(raw), test_split[7][0])
    # from a file the same, to 8-bit precision
    assert (predictor.preprocess(to_pil(raw)) - test_split[7][0]).abs().max() < 0.5 / 255 / min(
        predictor.std) + 1e-6


def test_topk_orders_clamps_and_names(predictor, test_split):
    img = _digit(test_split, 0)
    (p,) = predictor.predict(img, topk=2)
    assert len(p.indices) == 2 and p.source == "<image 0>"
    (q,) = predictor.predict([img], topk=50)  # more than the 5 classes: all of them
    assert sorted(q.indices) == [0, 1, 2, 3, 4] and sum(q.probabilities) == pytest.approx(1, abs=1e-5)
    assert q.indices[:2] == p.indices
    with pytest.raises(ValueError, match="topk"):
        predictor.predict(img, topk=0)


def test_batches_give_the_same_answers_as_one_at_a_time(predictor, test_split):
    imgs = [_digit(test_split, i) for i in range(7)]
    together = predictor.predict(imgs, topk=3, batch_size=3)
    alone = [predictor.predict(im, topk=3)[0] for im in imgs]
    for a, b in zip(together, alone):
        assert a.indices == b.indices
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-6)


# --- every image a user has ---------------------------------------------------------------------

def _saved(img: Image.Image, path, **kw) -> str:
    img.save(path, **kw)
    return str(path)


def test_every_format_and_mode_predicts_as_its_rgb_original(predictor, test_split, tmp_path):
    rgb = _digit(test_split, 3, size=(37, 23))
    reference = predictor.predict(rgb, topk=5)[0]
    grey = rgb.convert("L")
    grey_reference = predictor.predict(grey.convert("RGB"), topk=5)[0]
    same_as_rgb = [
        _saved(rgb, tmp_path / "a.png"), _saved(rgb, tmp_path / "a.bmp"),
        _saved(rgb, tmp_path / "a.tiff"), _saved(rgb, tmp_path / "a.webp", lossless=True),
        _saved(rgb.convert("RGBA"), tmp_path / "opaque.png"),  # alpha 255 everywhere
    ]
    same_as_grey = [
        _saved(grey, tmp_path / "g.png"), _saved(grey.convert("LA"), tmp_path / "la.png"),
        _saved(Image.fromarray(np.asarray(grey).astype(np.uint16) * 257), tmp_path / "g16.png"),
        _saved(grey.convert("P"), tmp_path / "p.png"),  # a palette of greys: exact
    ]
    for path in same_as_rgb + same_as_grey:
        (p,) = predictor.predict(path, topk=5)
        ref = reference if path in same_as_rgb else grey_reference
        assert p.indices == ref.indices, path
        np.testing.assert_allclose(p.probabilities, ref.probabilities, atol=1e-5, err_msg=path)
    # lossy and colour-managed formats: as PIL decodes them, converted to RGB
    for path in (_saved(rgb, tmp_path / "a.jpg", quality=90),
                 _saved(rgb.convert("CMYK"), tmp_path / "cmyk.jpg"),
                 _saved(rgb.convert("CMYK"), tmp_path / "cmyk.tiff")):
        (p,) = predictor.predict(path, topk=5)
        (ref,) = predictor.predict(Image.open(path).convert("RGB"), topk=5)
        np.testing.assert_allclose(p.probabilities, ref.probabilities, atol=1e-5, err_msg=path)


def test_transparent_pixels_count_as_white(predictor, test_split, tmp_path):
    rgb = _digit(test_split, 5)
    rgba = rgb.convert("RGBA")
    alpha = np.full(rgb.size[::-1], 255, np.uint8)
    alpha[:, : rgb.size[0] // 2] = 0  # left half transparent
    rgba.putalpha(Image.fromarray(alpha))
    white = np.asarray(rgb).copy()
    white[:, : rgb.size[0] // 2] = 255
    (p,) = predictor.predict(_saved(rgba, tmp_path / "t.png"), topk=5)
    (ref,) = predictor.predict(Image.fromarray(white), topk=5)
    assert p.indices == ref.indices
    np.testing.assert_allclose(p.probabilities, ref.probabilities, atol=1e-5)


@pytest.mark.parametrize("size", [(1, 1), (1, 500), (900, 3), (61, 47)])
def test_any_size_and_aspect(predictor, size):
    img = Image.new("RGB", size, (200, 30, 90))
    (p,) = predictor.predict(img, topk=1)
    assert len(p.indices) == 1 and 0 <= p.probabilities[0] <= 1


def test_tensors_are_accepted_and_wrong_shapes_refused(predictor, test_split):
    (p,) = predictor.predict(test_split.raw_image(2), topk=5)
    expected = _direct(predictor, test_split[2][0][None])[0]
    assert p.indices[0] == int(expected.argmax())
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        predictor.predict(torch.zeros(2, 8, 8))


# --- bad inputs --------------------------------------------------------------------------------

def _bad_tree(root, test_split):
    (root / "imgs" / "sub").mkdir(parents=True)
    _digit(test_split, 0).save(root / "imgs" / "0.png")
    _digit(test_split, 1).save(root / "imgs" / "sub" / "1.jpg")
    (root / "imgs" / "notes.txt").write_text("not an image, and not listed: wrong extension")
    (root / "imgs" / "fake.png").write_bytes(b"this is no png")
    data = (root / "imgs" / "0.png").read_bytes()
    (root / "imgs" / "truncated.png").write_bytes(data[: len(data) // 2])
    (root / "text.txt").write_text("hello")
    (root / "empty").mkdir()
    return root


def test_python_predict_names_the_bad_file(predictor, tmp_path, test_split):
    root = _bad_tree(tmp_path, test_split)
    with pytest.raises(DataError, match="fake.png"):
        predictor.predict(str(root / "imgs"))
    with pytest.raises(DataError, match="nosuch.png: no such file"):
        predictor.predict(str(root / "nosuch.png"))
    with pytest.raises(DataError, match="no image files"):
        predictor.predict(str(root / "empty"))
    kept = list(predictor.iter_predictions(str(root / "imgs"), keep_going=True))
    assert [os.path.basename(p.source) for p in kept] == ["0.png", "fake.png", "truncated.png", "1.jpg"]
    assert [p.error is None for p in kept] == [True, False, False, True]
    assert kept[1].as_dict() == {"source": kept[1].source, "error": kept[1].error}


def test_cli_bad_inputs_one_line_each_others_still_predicted(digits04_run, tmp_path, test_split,
                                                              capsys):
    root = _bad_tree(tmp_path, test_split)
    code = main(["predict", digits04_run, str(root / "imgs"), str(root / "text.txt"),
                 str(root / "missing.jpg"), str(root / "empty"), "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 2
    assert [line.split(":")[0] for line in out.splitlines()] == [
        str(root / "imgs" / "0.png"), str(root / "imgs" / "sub" / "1.jpg")]
    lines = err.splitlines()
    assert all(line.startswith("convnets: error: ") for line in lines) and "Traceback" not in err
    for name in ("empty", "fake.png", "truncated.png", "text.txt", "missing.jpg"):
        assert sum(name in line for line in lines) == 1, name
    assert lines[-1] == "convnets: error: 5 of 7 inputs could not be predicted" and len(lines) == 6


def test_cli_prints_names_and_probabilities_and_json(digits04_run, predictor, tmp_path, capsys):
    export_images("digits:0-4", str(tmp_path / "d"), per_class=2)
    assert main(["predict", digits04_run, str(tmp_path / "d"), "--topk", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 10
    expected = predictor.predict(str(tmp_path / "d"), topk=3)
    for line, p in zip(lines, expected):
        assert line == f"{p.source}: " + ", ".join(
            f"{c} {100 * q:.1f}%" for c, q in zip(p.classes, p.probabilities))
    assert main(["predict", digits04_run, str(tmp_path / "d"), "--json", "--topk", "2"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["source"] for r in records] == [p.source for p in expected]
    assert records[0]["topk"][0] == {"index": expected[0].indices[0], "class": expected[0].classes[0],
                                     "probability": pytest.approx(expected[0].probabilities[0])}
    assert all(len(r["topk"]) == 2 for r in records)


@pytest.mark.parametrize("argv, message", [
    (["predict", "RUN", "IMG", "--topk", "0"], "--topk must be a whole number of at least 1"),
    (["predict", "RUN", "IMG", "--batch-size", "0"], "--batch-size must be a whole number of at"),
    (["predict", "RUN", "IMG", "--workers", "-1"], "--workers must be a whole number of at least 0"),
    (["predict", "RUN", "IMG", "--device", "tpu"], "--device 'tpu' is not"),
    (["predict", "RUN"], "the following arguments are required"),
    (["predict", "/no/such/run/", "IMG"], "no run directory or weights file"),
    (["predict", "resnet2O", "IMG"], "unknown model 'resnet2O'; did you mean"),
    (["predict", "WEIGHTS", "IMG"], "give --model NAME"),
])
def test_cli_bad_options_are_one_line(digits04_run, tmp_path, capsys, argv, message):
    _digit(open_dataset("digits", "test", input_size=(3, 8, 8), train_transform=False), 0).save(
        tmp_path / "i.png")
    torch.save({"w": torch.zeros(1)}, tmp_path / "w.pt")
    subst = {"RUN": digits04_run, "IMG": str(tmp_path / "i.png"), "WEIGHTS": str(tmp_path / "w.pt")}
    assert main([subst.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


# --- weights without a run, ensembles, run directories that travel ---------------------------------

def test_a_torchvision_style_weights_file_gets_the_imagenet_names(tmp_path, capsys):
    torch.manual_seed(0)
    path = str(tmp_path / "resnet18.pth")
    torch.save(convnets.create_model("resnet18").state_dict(), path)
    p = Predictor.from_target(path, model="resnet18", device="cpu")
    assert p.classes == convnets.imagenet_classes() and p.input_size == (3, 224, 224)
    assert p.mean == (0.485, 0.456, 0.406) and p.std == (0.229, 0.224, 0.225)
    assert p.preset == "imagenet"
    img = Image.new("RGB", (320, 240), (10, 120, 40))
    (pred,) = convnets.predict(path, img, topk=3, model="resnet18")
    assert pred.classes == tuple(convnets.imagenet_classes()[i] for i in pred.indices)
    img.save(tmp_path / "green.jpg")
    assert main(["predict", path, str(tmp_path / "green.jpg"), "--model", "resnet18", "--topk", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{tmp_path / 'green.jpg'}: {pred.classes[0]} ")


def test_a_bare_model_name_predicts_its_initialisation_with_a_note(tmp_path, capsys):
    Image.new("RGB", (32, 32), (1, 2, 3)).save(tmp_path / "x.png")
    assert main(["predict", "resnet20", str(tmp_path / "x.png"), "--topk", "2"]) == 0
    out, err = capsys.readouterr()
    assert "untrained initialisation" in err and out.count("%") == 2


def test_a_snapshot_ensemble_averages_its_snapshots(tmp_path):
    from convnets.engine.config import TrainConfig
    from convnets.engine.runs import snapshot_files
    from convnets.engine.train import fit
    from convnets.models import create_model, load_weights

    run = str(tmp_path / "snap")
    fit(TrainConfig(model="resnet20", data="synthetic:32:5", input_size=[3, 8, 8], epochs=2,
                    snapshot_ensemble=2, batch_size=16, workers=0, device="cpu"), run,
        log=lambda _: None, progress=False)
    p = Predictor.from_target(run, device="cpu")
    assert len(p.members) == 2 and p.classes == ["0", "1", "2", "3", "4"]
    x = torch.randn(1, 3, 8, 8)
    probs = [torch.softmax(load_weights(create_model("resnet20", num_classes=5), f).eval()(x), 1)
             for f in snapshot_files(run)]
    torch.testing.assert_close(p.probabilities(x), torch.stack(probs).mean(0))


def test_a_run_travels_without_its_data_and_an_old_run_reads_its_data(digits04_run, tmp_path,
                                                                      predictor, test_split):
    img = _digit(test_split, 4)
    expected = predictor.predict(img)[0]
    # an older run: no inference.json, but the built-in digits can be reopened
    old = str(tmp_path / "old")
    shutil.copytree(digits04_run, old)
    os.remove(os.path.join(old, INFERENCE_FILE))
    again = Predictor.from_target(old, device="cpu")
    assert (again.classes, again.mean, again.std, again.preset) == (
        predictor.classes, predictor.mean, predictor.std, predictor.preset)
    assert again.predict(img)[0].indices == expected.indices
    # an older run whose data is gone: one line that says what is missing
    cfg = json.load(open(os.path.join(old, "config.json")))
    cfg["data"] = f"folder:{tmp_path / 'gone'}"
    json.dump(cfg, open(os.path.join(old, "config.json"), "w"))
    with pytest.raises(RunDirError, match="no inference.json .* cannot be opened here") as info:
        Predictor.from_target(old, device="cpu")
    assert "\n" not in str(info.value)
    # a run with inference.json needs no data at all, wherever its config points
    moved = str(tmp_path / "moved")
    shutil.copytree(digits04_run, moved)
    cfg["data"] = f"folder:{tmp_path / 'gone'}"
    json.dump(cfg, open(os.path.join(moved, "config.json"), "w"))
    assert Predictor.from_target(moved, device="cpu").predict(img)[0].indices == expected.indices


# --- backends ------------------------------------------------------------------------------------

class _FixedBackend:
    """A Backend answering the same probabilities for every image, and counting batches."""

    name = "fixed"
    device = torch.device("cpu")
    members: tuple = ()

    def __init__(self, probs):
        self.probs, self.batches = torch.tensor(probs), []

    def probabilities(self, batch):
        self.batches.append(len(batch))
        return self.probs.expand(len(batch), -1)


def test_any_backend_gets_the_predictors_preprocessing_names_topk_and_batches(predictor, test_split):
    backend = _FixedBackend([0.1, 0.5, 0.05, 0.3, 0.05])
    p = Predictor(backend, predictor.spec)
    imgs = [_digit(test_split, i) for i in range(5)]
    preds = p.predict(imgs, topk=3, batch_size=2)
    assert backend.batches == [2, 2, 1]
    assert [q.classes for q in preds] == [("1", "3", "0")] * 5
    assert preds[0].probabilities == pytest.approx((0.5, 0.3, 0.1))
    assert p.model is None and p.members == [] and p.device == torch.device("cpu")


def test_a_pytorch_predictor_runs_on_its_torch_backend(predictor):
    from convnets.inference.predict import TorchBackend

    assert isinstance(predictor.backend, TorchBackend) and predictor.backend.name == "PyTorch"
    assert predictor.members == [predictor.model] and predictor.backend.members[-1] is predictor.model
    with pytest.raises(ValueError, match="at least one model"):
        Predictor.from_modules([], predictor.spec, torch.device("cpu"))


def test_predict_on_a_whitened_run_gives_the_tensor_of_the_evaluation_transform(tmp_path,
                                                                                 monkeypatch):
    """nin-cifar's GCN + ZCA is fitted on the training split when the run starts, kept in
    the run, and applied by predict without the data (no second fit)."""
    from convnets.data import whitening
    from convnets.engine.config import TrainConfig
    from convnets.engine.train import fit

    run = str(tmp_path / "nin")
    fit(TrainConfig(model="resnet20", data="digits:0,1", input_size=[3, 8, 8], epochs=1,
                    preset="nin-cifar", batch_size=64, workers=0, device="cpu"), run,
        log=lambda _: None, progress=False)
    assert os.path.isfile(os.path.join(run, whitening.WHITENING_FILE))
    test = open_dataset("digits:0,1", "test", input_size=(3, 8, 8), train_transform=False,
                        preset="nin-cifar")

    def no_fit(*args):
        raise AssertionError("predict must read the run's whitening, not fit one")

    monkeypatch.setattr(whitening, "_fitted", no_fit)
    p = Predictor.from_target(run, device="cpu")
    for i in (0, 7):
        expected, _ = test[i]
        torch.testing.assert_close(p.preprocess(test.raw_image(i)), expected)
    x = torch.stack([test[i][0] for i in (0, 7)])
    torch.testing.assert_close(p.probabilities(x), _direct(p, x))
