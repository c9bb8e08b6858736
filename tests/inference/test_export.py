"""`convnets export --onnx`: ONNX Runtime gives the network's own logits, at any batch size,
and `convnets predict model.onnx` prints what `predict` prints for the source."""
from __future__ import annotations

import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import convnets
from convnets.cli import main
from convnets.engine.inference_spec import spec_without_run
from convnets.errors import ConvnetsError
from convnets.inference.export import OnnxPredictor, export_onnx, write_onnx

# One model of each family, at the smallest input it exports at (10 classes keeps heads
# small; AlexNet and VGG pool adaptively to 6x6 / 7x7, which ONNX takes only from their
# own 224). gunn15 has its own test below.
_FAMILIES = {
    "resnet20": 32, "vgg11_bn": 224, "googlenet": 32, "inception_v3": 75,
    "densenet_bc100_k12": 32, "dpn92": 32, "seresnet50": 32, "sunn15": 32,
    "alexnet": 224, "lenet5": 32, "nin_cifar": 32, "preact_resnet164": 32,
}


def _export(model, name, size, path):
    spec = spec_without_run(name, 10, (model_in_channels(name), size, size))
    write_onnx([model], spec, path)
    return spec


def model_in_channels(name: str) -> int:
    return convnets.model_info(name).input_size[0]


def _close(got: np.ndarray, want: torch.Tensor) -> None:
    want = want.numpy()
    tol = 1e-4 * max(1.0, float(np.abs(want).max()))
    assert got.shape == want.shape
    assert float(np.abs(got - want).max()) <= tol


@pytest.mark.parametrize("name", sorted(_FAMILIES))
def test_onnx_runtime_gives_the_eval_logits_at_two_batch_sizes(name, tmp_path):
    torch.manual_seed(0)
    kw = {"aux_logits": False} if name == "inception_v3" else {}
    model = convnets.create_model(name, num_classes=10, **kw).eval()
    size, c = _FAMILIES[name], model_in_channels(name)
    path = str(tmp_path / "m.onnx")
    _export(model, name, size, path)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for batch in (2, 3):
        x = torch.randn(batch, c, size, size)
        with torch.no_grad():
            want = model(x)
        _close(session.run(None, {"images": x.numpy()})[0], want)


def test_exported_gunn_is_gunn_not_sunn(tmp_path):
    torch.manual_seed(0)
    model = convnets.create_model("gunn15", num_classes=10).eval()
    assert all(layer.fast for layer in model.gunn_layers())
    path = str(tmp_path / "g.onnx")
    _export(model, "gunn15", 32, path)
    assert all(layer.fast for layer in model.gunn_layers())  # restored after the trace
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for batch in (2, 3):
        x = torch.randn(batch, 3, 32, 32)
        with torch.no_grad():
            gunn = model(x)  # the fast path
            sunn = model.set_gradual(False)(x)
        model.set_gradual(True)
        got = session.run(None, {"images": x.numpy()})[0]
        _close(got, gunn)
        assert float(np.abs(got - sunn.numpy()).max()) > 1e-2


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A resnet20 weights file, its ONNX export (through the command line) and 3 images."""
    root = tmp_path_factory.mktemp("export")
    torch.manual_seed(1)
    model = convnets.create_model("resnet20", num_classes=10)
    weights = str(root / "w.safetensors")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, weights)
    path = str(root / "r.onnx")
    assert main(["export", weights, "--model", "resnet20", "--onnx", path]) == 0
    rng = np.random.default_rng(0)
    images = []
    for i in range(3):
        p = str(root / f"{i}.png")
        Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(p)
        images.append(p)
    return weights, path, images


def test_metadata_holds_the_inference_spec(exported):
    _, path, _ = exported
    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert props["convnets.output"] == "logits"
    spec = OnnxPredictor(path).spec
    assert spec == spec_without_run("resnet20", 10)
    assert spec.preset == "cifar" and spec.input_size == (3, 32, 32)


def test_predict_on_the_onnx_file_prints_what_predict_prints_on_the_source(exported, capsys):
    weights, path, images = exported
    capsys.readouterr()
    assert main(["predict", weights, "--model", "resnet20", *images, "--topk", "3"]) == 0
    source = capsys.readouterr().out.splitlines()
    assert main(["predict", path, *images, "--topk", "3"]) == 0
    onnx_out = capsys.readouterr().out.splitlines()
    assert len(source) == 3
    classes = [[part.rsplit(" ", 1)[0] for part in line.split(": ", 1)[1].split(", ")]
               for line in source]
    assert classes == [[part.rsplit(" ", 1)[0] for part in line.split(": ", 1)[1].split(", ")]
                       for line in onnx_out]


def test_existing_file_is_kept_unless_forced(exported, tmp_path, capsys):
    weights = exported[0]
    path = tmp_path / "x.onnx"
    path.write_text("mine")
    assert main(["export", weights, "--model", "resnet20", "--onnx", str(path)]) == 2
    assert "--force" in capsys.readouterr().err and path.read_text() == "mine"
    assert main(["export", weights, "--model", "resnet20", "--onnx", str(path), "--force"]) == 0
    onnx.checker.check_model(str(path))


@pytest.mark.parametrize("argv, message", [
    (["no_such_model", "--onnx", "{tmp}/a.onnx"], "no_such_model"),
    (["resnet20", "--onnx", "{tmp}/missing/a.onnx"], "no folder"),
    (["resnet20", "--onnx", "{tmp}"], "is a folder"),
    (["resnet20", "--onnx", "{tmp}/a.onnx", "--opset", "99"], "--opset"),
    (["resnet20", "--onnx", "{tmp}/a.onnx", "--opset", "5"], "--opset"),
])
def test_bad_export_arguments_are_one_line(argv, message, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["export", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not os.path.exists(tmp_path / "a.onnx")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_folder(tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    assert main(["export", "resnet20", "--onnx", str(folder / "a.onnx")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_unwritable_folder_is_refused_before_loading(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(ConvnetsError, match="cannot write"):
        export_onnx("resnet20", str(tmp_path / "a.onnx"))


@pytest.mark.parametrize("content", [b"not an onnx file at all \x00\xff" * 4, b""])
def test_predict_refuses_a_corrupt_onnx_file(content, exported, tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    assert main(["predict", str(bad), exported[2][0]]) == 2
    err = capsys.readouterr().err.strip()
    assert str(bad) in err and len(err.splitlines()) == 1


def test_predict_refuses_an_onnx_file_without_convnets_metadata(exported, tmp_path, capsys):
    proto = onnx.load(exported[1])
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    assert main(["predict", str(bare), exported[2][0]]) == 2
    assert "without convnets' metadata" in capsys.readouterr().err


def test_an_input_size_the_exporter_cannot_take_is_one_line(tmp_path, capsys):
    # AlexNet's adaptive pooling to 6x6 from a 1x1 map has no ONNX form.
    assert main(["export", "alexnet", "--onnx", str(tmp_path / "a.onnx"), "--input-size", "64"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot export alexnet" in err and len(err.splitlines()) == 1


def test_an_ensemble_exports_its_averaged_softmax(tmp_path):
    from convnets.engine.evaluation import ensemble_predict

    torch.manual_seed(2)
    members = [convnets.create_model("lenet5", num_classes=10).eval() for _ in range(2)]
    spec = spec_without_run("lenet5", 10, (1, 32, 32))
    path = str(tmp_path / "e.onnx")
    write_onnx(members, spec, path)
    predictor = OnnxPredictor(path)
    assert predictor.output == "probabilities"
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        want = ensemble_predict(members, x)
    _close(predictor.probabilities(x).numpy(), want)


def test_from_target_knows_an_onnx_file_and_answers_what_the_source_answers(exported):
    from convnets.inference.export import OnnxBackend

    weights, path, images = exported
    source = convnets.Predictor.from_target(weights, model="resnet20", device="cpu")
    p = convnets.Predictor.from_target(path)
    assert type(p) is convnets.Predictor and isinstance(p.backend, OnnxBackend)
    assert p.backend.name == "ONNX Runtime" and p.model is None and p.members == []
    assert p.weights == [path] and p.spec == source.spec
    for got, want in zip(p.predict(images, topk=3), source.predict(images, topk=3)):
        assert got.indices == want.indices
        np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-4)
    # the older name is the same Predictor
    assert OnnxPredictor(path).predict(images, topk=3) == p.predict(images, topk=3)


def test_an_onnx_file_is_known_by_its_name(exported, tmp_path):
    from convnets.errors import WeightsError
    from convnets.inference.export import is_onnx_file

    assert is_onnx_file("model.onnx") and is_onnx_file("MODEL.ONNX")
    assert not is_onnx_file("model.safetensors") and not is_onnx_file("resnet20")
    folder = tmp_path / "run.onnx"
    folder.mkdir()
    assert not is_onnx_file(str(folder))  # a folder is a run directory, whatever its name
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08" * 16)  # not a protobuf ONNX reads
    with pytest.raises(WeightsError, match="bad.onnx"):
        convnets.Predictor.from_target(str(bad))
