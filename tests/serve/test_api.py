"""The JSON API of a real server against the library's own answers for the same images."""
import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image

from convnets.inspect.visualize import occlusion


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def test_model_describes_what_is_served(server, predictor):
    m = server.call("GET", "/v1/model").json()
    assert m["model"] == "resnet20"
    assert m["classes"] == ["0", "1", "2", "3", "4"] == predictor.classes
    assert m["num_classes"] == 5
    assert m["input_size"] == [3, 8, 8]
    assert m["parameters"] == sum(p.numel() for p in predictor.model.parameters())
    assert m["mean"] == pytest.approx(list(predictor.mean))
    assert m["weights"] == ["model.safetensors"]  # a name, never the server's paths
    assert m["batching"]["max_batch"] == 32


@pytest.mark.parametrize("multipart", [True, False], ids=["multipart", "raw-body"])
def test_predict_gives_the_library_answer(server, predictor, digit_pngs, multipart):
    paths = [digit_pngs[c][0] for c in sorted(digit_pngs)]
    expected = predictor.predict(paths, topk=5)
    for path, want in zip(paths, expected):
        r = server.post_image("/v1/predict", _read(path), multipart=multipart)
        assert r.status == 200, r.body
        got = r.json()
        assert got["model"] == "resnet20"
        assert [t["index"] for t in got["topk"]] == list(want.indices)
        assert [t["class"] for t in got["topk"]] == list(want.classes)
        assert [t["probability"] for t in got["topk"]] == pytest.approx(want.probabilities,
                                                                       abs=1e-5)


def test_topk_chooses_how_many(server, digit_pngs):
    data = _read(digit_pngs["2"][0])
    three = server.post_image("/v1/predict?topk=3", data).json()["topk"]
    assert len(three) == 3
    probs = [t["probability"] for t in three]
    assert probs == sorted(probs, reverse=True)
    every = server.post_image("/v1/predict?topk=1000", data).json()["topk"]
    assert sorted(t["class"] for t in every) == ["0", "1", "2", "3", "4"]  # all the model has
    assert sum(t["probability"] for t in every) == pytest.approx(1.0, abs=1e-5)


def test_each_single_request_is_one_forward_pass(server, digit_pngs):
    before = server.stats()
    for c in ("0", "1", "2"):
        assert server.post_image("/v1/predict", _read(digit_pngs[c][1])).status == 200
    after = server.stats()
    assert after["forward_passes"] - before["forward_passes"] == 3
    assert after["images"] - before["images"] == 3


def test_occlusion_is_the_library_map(server, predictor, digit_pngs):
    path = digit_pngs["3"][0]
    r = server.post_image("/v1/occlusion?target=3", _read(path))
    assert r.status == 200, r.body
    got = r.json()
    want = occlusion(predictor.model, predictor.preprocess(path), target="3",
                     classes=predictor.classes)
    assert got["target"] == 3 and got["target_class"] == "3"
    assert (got["patch"], got["stride"]) == (want.patch, want.stride)
    assert np.array(got["prob"]) == pytest.approx(want.prob, abs=1e-5)
    assert got["probability"] == pytest.approx(float(want.probs[3]), abs=1e-5)
    heat = Image.open(io.BytesIO(base64.b64decode(got["heatmap_png"])))
    view = Image.open(io.BytesIO(base64.b64decode(got["input_png"])))
    assert heat.size == view.size == (8, 8)
    # The brightest cell of the heat map is where the class's probability fell lowest.
    luma = np.asarray(heat.convert("L"), dtype=float)
    row, col = np.unravel_index(want.prob.argmin(), want.prob.shape)
    assert luma[row * want.stride, col * want.stride] == luma.max()
    # The input view is the preprocessed image, un-normalised.
    x = predictor.preprocess(path)
    mean, std = torch.tensor(predictor.mean)[:, None, None], torch.tensor(predictor.std)[:, None, None]
    pixels = ((x * std + mean).clamp(0, 1) * 255).round().permute(1, 2, 0).numpy()
    assert np.abs(np.asarray(view, dtype=float) - pixels).max() <= 1


def test_occlusion_defaults_to_the_predicted_class(server, predictor, digit_pngs):
    path = digit_pngs["1"][0]
    got = server.post_image("/v1/occlusion", _read(path)).json()
    assert got["target"] == predictor.predict(path, topk=1)[0].indices[0]


def test_healthz_docs_openapi_and_page(server):
    health = server.call("GET", "/healthz")
    assert health.status == 200 and health.json()["status"] == "ok"
    spec = server.call("GET", "/openapi.json").json()
    assert {"/v1/predict", "/v1/occlusion", "/v1/model", "/healthz"} <= set(spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    docs = server.call("GET", "/docs")
    assert docs.status == 200 and b"swagger" in docs.body.lower()
    page = server.call("GET", "/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert b'name="viewport"' in page.body and b"v1/predict" in page.body
