"""The API description (/openapi.json) says what the server does: the image bodies it
reads, every refusal with its JSON shape, and the bounds of the occlusion options; a
schema-driven tester (schemathesis, every check) finds nothing it contradicts."""
import pytest

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
