"""inference.json: written when a run starts, checked whenever it is read."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import convnets
from convnets.cli import main
from convnets.engine import train as train_module
from convnets.engine.config import TrainConfig
from convnets.engine.inference_spec import INFERENCE_FILE, load_inference_spec, spec_without_run
from convnets.engine.train import fit
from convnets.errors import RunDirError
from convnets.inference.predict import Predictor


def _quiet(_):
    pass


def _cfg(**kw):
    base = dict(model="resnet20", data="synthetic:32:5", input_size=[3, 8, 8], epochs=2,
                batch_size=16, workers=0, device="cpu")
    return TrainConfig(**{**base, **kw})


def test_a_run_records_its_classes_size_normalisation_and_preset_before_training(tmp_path,
                                                                                 monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train_one_epoch", interrupted)
    run = str(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        fit(_cfg(data="digits:5,7,9", input_size=[1, 32, 32], model="lenet5"), run, log=_quiet)
    raw = json.load(open(os.path.join(run, INFERENCE_FILE)))
    assert raw["format"] == 1 and raw["model"] == "lenet5" and raw["data"] == "digits:5,7,9"
    assert raw["num_classes"] == 3 and raw["classes"] == ["5", "7", "9"]
    assert raw["input_size"] == [1, 32, 32] and raw["preset"] == "digits"
    # the digits' training statistics at 32x32 (all ten classes), recomputed here
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    tr, _ = train_test_split(np.arange(1797), test_size=360, random_state=0, stratify=d.target)
    up = F.interpolate(torch.from_numpy(d.images[np.sort(tr)] / 16.0).unsqueeze(1), size=(32, 32),
                       mode="bilinear", align_corners=False)
    assert raw["mean"] == [pytest.approx(up.mean().item())]
    assert raw["std"] == [pytest.approx(up.std(unbiased=False).item())]


def test_a_resumed_old_run_gets_the_file(tmp_path):
    run = str(tmp_path / "old")
    fit(_cfg(), run, until_epoch=1, log=_quiet, progress=False)
    os.remove(os.path.join(run, INFERENCE_FILE))
    fit(_cfg(), run, resume=True, log=_quiet, progress=False)
    spec = load_inference_spec(os.path.join(run, INFERENCE_FILE))
    assert spec.classes == ("0", "1", "2", "3", "4") and spec.preset == "none"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = str(tmp_path_factory.mktemp("spec") / "run")
    fit(_cfg(epochs=1), run, log=_quiet, progress=False)
    return run


@pytest.mark.parametrize("tamper, message", [
    (lambda raw: "{not json", "is not valid JSON"),
    (lambda raw: [1, 2], "does not hold a JSON object"),
    (lambda raw: {**raw, "format": 7}, "format 7 is not 1"),
    (lambda raw: {k: v for k, v in raw.items() if k != "classes"}, "lacks classes"),
    (lambda raw: {**raw, "model": "resnet99"}, "'resnet99' is not a registered model"),
    (lambda raw: {**raw, "model": "resnet32"}, "describes a resnet32 at 3x8x8, but the run trains"),
    (lambda raw: {**raw, "classes": raw["classes"][:4]}, "holds 4 class names for num_classes 5"),
    (lambda raw: {**raw, "classes": [1, 2, 3, 4, 5]}, "classes must be a list of names"),
    (lambda raw: {**raw, "num_classes": 6, "classes": raw["classes"] + ["x"]},
     "names 6 classes, but the weights have 5"),
    (lambda raw: {**raw, "input_size": [3, 8]}, "input_size must be [C, H, W]"),
    (lambda raw: {**raw, "input_size": [3, 16, 16]}, "at 3x16x16, but the run trains a resnet20 at 3x8x8"),
    (lambda raw: {**raw, "mean": [0.5]}, "mean must be 3 finite numbers"),
    (lambda raw: {**raw, "std": [1.0, 0.0, 1.0]}, "std must be positive"),
    (lambda raw: {**raw, "std": [1.0, None, 1.0]}, "std must be 3 finite numbers"),
    (lambda raw: {**raw, "preset": "fancy"}, "preset 'fancy' is not one of"),
    (lambda raw: {**raw, "data": 3}, "data must be a dataset spec or null"),
])
def test_a_tampered_file_is_one_line(run_dir, tmp_path, capsys, tamper, message):
    run = str(tmp_path / "tampered")
    shutil.copytree(run_dir, run)
    path = os.path.join(run, INFERENCE_FILE)
    changed = tamper(json.load(open(path)))
    with open(path, "w") as f:
        f.write(changed if isinstance(changed, str) else json.dumps(changed))
    with pytest.raises(RunDirError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        Predictor.from_target(run, device="cpu")
    assert "\n" not in str(info.value)
    (tmp_path / "x.png").write_bytes(b"")
    assert main(["predict", run, str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_weights_without_a_run_follow_their_datasets_conventions():
    imagenet = spec_without_run("resnet18", 1000)
    assert imagenet.classes == tuple(convnets.imagenet_classes()) and imagenet.preset == "imagenet"
    assert imagenet.mean == (0.485, 0.456, 0.406) and imagenet.input_size == (3, 224, 224)
    cifar = spec_without_run("resnet20", 10)
    assert cifar.classes == tuple(str(k) for k in range(10)) and cifar.preset == "cifar"
    assert cifar.mean == pytest.approx((0.4914, 0.4822, 0.4465))
    grey = spec_without_run("lenet5", 10)  # one input channel: the luma of the RGB statistics
    assert grey.mean == pytest.approx((0.299 * 0.485 + 0.587 * 0.456 + 0.114 * 0.406,))
    assert spec_without_run("resnet18", 7).classes == tuple("0123456")


# --- a preset that whitens: the fit travels in whitening.safetensors -------------------------

def _whitened_spec():
    from convnets.data.whitening import Whitening
    from convnets.engine.inference_spec import InferenceSpec

    fitted = Whitening.fit(torch.rand(30, 3, 4, 4))
    return InferenceSpec("resnet20", ("a", "b"), (3, 4, 4), (0.5,) * 3, (0.2,) * 3,
                         "nin-cifar", "digits", fitted)


def test_a_whitening_spec_writes_its_fit_beside_and_reads_it_back(tmp_path):
    from convnets.data.whitening import WHITENING_FILE
    from convnets.engine.inference_spec import save_inference_spec

    spec = _whitened_spec()
    save_inference_spec(str(tmp_path), spec)
    raw = json.loads((tmp_path / INFERENCE_FILE).read_text())
    assert raw["whitening"] == WHITENING_FILE and (tmp_path / WHITENING_FILE).is_file()
    back = load_inference_spec(str(tmp_path / INFERENCE_FILE))
    assert back == spec and back.whitening == spec.whitening
    img = torch.randint(0, 256, (3, 4, 4), dtype=torch.uint8)
    torch.testing.assert_close(back.transform()(img), spec.whitening.apply(img.float() / 255))
    # without its file, or with another name, the run is refused in one line
    raw["whitening"] = "elsewhere.bin"
    (tmp_path / INFERENCE_FILE).write_text(json.dumps(raw))
    with pytest.raises(RunDirError, match="whitening must name whitening.safetensors"):
        load_inference_spec(str(tmp_path / INFERENCE_FILE))
    raw["whitening"] = WHITENING_FILE
    (tmp_path / INFERENCE_FILE).write_text(json.dumps(raw))
    os.remove(tmp_path / WHITENING_FILE)
    with pytest.raises(RunDirError, match="whitening.safetensors is missing"):
        load_inference_spec(str(tmp_path / INFERENCE_FILE))
    (tmp_path / WHITENING_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(RunDirError, match="is not a whitening written by convnets"):
        load_inference_spec(str(tmp_path / INFERENCE_FILE))


def test_a_whitening_of_another_size_is_refused(tmp_path):
    from dataclasses import replace

    from convnets.data.whitening import WHITENING_FILE, Whitening
    from convnets.engine.inference_spec import save_inference_spec

    save_inference_spec(str(tmp_path), _whitened_spec())
    Whitening.fit(torch.rand(30, 3, 2, 2)).save(str(tmp_path / WHITENING_FILE))
    with pytest.raises(RunDirError, match=r"fitted at \(3, 2, 2\), the network takes \(3, 4, 4\)"):
        load_inference_spec(str(tmp_path / INFERENCE_FILE))
    assert "whitening" not in replace(_whitened_spec(), whitening=None, preset="cifar").to_dict()


def test_a_whitening_spec_read_without_its_file_refuses_to_preprocess():
    """What an ONNX file carries (the JSON alone, in its metadata): the preset is kept, the
    fit is not, and preprocessing says so instead of skipping the whitening."""
    from convnets.engine.inference_spec import InferenceSpec
    from convnets.errors import ConfigError

    carried = InferenceSpec.from_dict(_whitened_spec().to_dict(), "model.onnx")
    assert carried.preset == "nin-cifar" and carried.whitening is None
    with pytest.raises(ConfigError, match="an ONNX export does not carry it"):
        carried.transform()
