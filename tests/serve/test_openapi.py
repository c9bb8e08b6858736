"""The API description (/openapi.json) says what the server does: the image bodies it
reads, every refusal with its JSON shape, and the bounds of the occlusion options; a
schema-driven tester (schemathesis, every check) finds nothing it contradicts."""
import os
import subprocess
import sys

import pytest

from conftest import Server

IMAGE_ROUTES = ("/v1/predict", "/v1/occlusion")


@pytest.fixture(scope="module")
def spec(server):
    return server.call("GET", "/openapi.json").json()


@pytest.mark.parametrize("path", IMAGE_ROUTES)
def test_every_refusal_is_documented_as_one_error_line(spec, path):
    responses = spec["paths"][path]["post"]["responses"]
    assert set(responses) == {"200", "400", "413", "415", "422"}
    for status in ("400", "413", "415", "422"):
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorReply"}
        assert responses[status]["description"]
    reply = spec["components"]["schemas"]["ErrorReply"]
    assert reply["required"] == ["error"] and reply["properties"]["error"]["type"] == "string"


@pytest.mark.parametrize("path", IMAGE_ROUTES)
def test_the_image_body_is_required_and_described(spec, path):
    body = spec["paths"][path]["post"]["requestBody"]
    assert body["required"] is True
    form = body["content"]["multipart/form-data"]
    assert form["schema"]["required"] == ["file"]
    assert form["schema"]["properties"]["file"] == {"type": "string", "format": "binary"}
    assert "image/png" in form["encoding"]["file"]["contentType"]
    assert body["content"]["image/*"]["schema"]["format"] == "binary"
    assert "application/octet-stream" in body["description"]


def test_occlusion_options_carry_the_served_models_bounds(spec):
    params = {p["name"]: p["schema"] for p in spec["paths"]["/v1/occlusion"]["post"]["parameters"]}
    assert params["target"]["enum"] == ["0", "1", "2", "3", "4"]  # names and indices at once
    assert params["patch"]["maximum"] == 8  # the served input is 8 x 8
    assert (params["stride"]["minimum"], params["stride"]["maximum"]) == (1, 8)


def test_stride_bounds_follow_the_position_limit():
    from convnets.serve.inputs import (MAX_OCCLUSION_POSITIONS, occlusion_positions,
                                       smallest_stride)

    for h, w in [(8, 8), (32, 32), (33, 32), (224, 224), (299, 299), (64, 1000)]:
        s = smallest_stride(h, w)
        assert occlusion_positions(h, w, s) <= MAX_OCCLUSION_POSITIONS
        assert s == 1 or occlusion_positions(h, w, s - 1) > MAX_OCCLUSION_POSITIONS


def test_schemathesis_finds_nothing_the_description_contradicts(served_run, tmp_path):
    """``st run URL/openapi.json --checks all`` on a real server, a bounded number of
    examples; schemathesis_images.py tells it what an image upload is. The seed is fixed:
    some seeds rename the form's ``file`` field, which the server, taking a file under any
    name, accepts (see convnets.serve.inputs.image_body)."""
    pytest.importorskip("schemathesis")
    server = Server(served_run, log_dir=tmp_path)
    hooks = os.path.join(os.path.dirname(__file__), "schemathesis_images.py")
    try:
        run = subprocess.run(
            [sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()",
             "run", f"{server.url}openapi.json", "--checks", "all", "--max-examples", "20",
             "--seed", "1", "--workers", "1", "--report-dir", str(tmp_path / "report")],
            env={**os.environ, "SCHEMATHESIS_HOOKS": hooks}, cwd=tmp_path,
            capture_output=True, text=True, timeout=120)
    finally:
        server.stop()
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout
