"""What a client can get wrong: each is a 4xx with one line of JSON, and the server
goes on serving."""
import io
import os
import zlib
import struct

import pytest
from PIL import Image

from conftest import multipart_body


def _png(size, colour=(255, 255, 255)):
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def _bomb_png(width, height):
    """A valid PNG header declaring width x height grey pixels, with a tiny compressed
    body: a decoder that trusted the header would allocate width*height bytes."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))


def _check_refusal(reply, status, *words):
    assert reply.status == status, reply.body
    assert reply.headers["content-type"] == "application/json"
    assert b"\n" not in reply.body.strip()
    body = reply.json()
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"]
    for w in words:
        assert w in body["error"]


@pytest.fixture()
def still_serving(server, digit_pngs):
    """After the test: the server still answers a good request."""
    yield
    with open(digit_pngs["0"][0], "rb") as f:
        r = server.post_image("/v1/predict", f.read())
    assert r.status == 200 and len(r.json()["topk"]) == 5


@pytest.mark.usefixtures("still_serving")
class TestRefused:
    def test_not_an_image(self, server):
        _check_refusal(server.post_image("/v1/predict", b"hello, I am text" * 10), 400,
                       "not an image")

    def test_truncated_image(self, server, digit_pngs):
        with open(digit_pngs["1"][0], "rb") as f:
            data = f.read()
        _check_refusal(server.post_image("/v1/predict", data[: len(data) // 2]), 400,
                       "truncated")

    @pytest.mark.parametrize("multipart", [True, False])
    def test_empty_body(self, server, multipart):
        _check_refusal(server.post_image("/v1/predict", b"", multipart=multipart), 400, "empty")

    def test_no_body_and_no_type(self, server):
        _check_refusal(server.call("POST", "/v1/predict"), 400, "empty")

    def test_pixel_bomb_is_refused_from_its_header(self, server):
        data = _bomb_png(20000, 20000)
        assert len(data) < 2000  # 400 megapixels declared in a few hundred bytes
        _check_refusal(server.post_image("/v1/predict", data, multipart=False), 400,
                       "400,000,000 pixels", "limit of 25,000,000")

    def test_over_the_server_pixel_limit(self, server):
        data = _bomb_png(6000, 5000)  # 30 megapixels: under PIL's limits, over the server's
        _check_refusal(server.post_image("/v1/predict", data), 400, "6000 x 5000", "limit")

    def test_body_over_max_bytes_by_its_length(self, server):
        _check_refusal(server.post_image("/v1/predict", b"\0" * 300_000, multipart=False), 413,
                       "200,000")

    def test_body_over_max_bytes_without_a_length(self, server):
        """Chunked: no Content-Length, so the limit is found while the body streams in."""
        import http.client

        conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
        try:
            conn.putrequest("POST", "/v1/predict")
            conn.putheader("Content-Type", "image/png")
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            try:
                for _ in range(50):  # up to 50 x 64 kB = 3.2 MB, far past the limit
                    block = b"\0" * 65536
                    conn.send(b"%x\r\n%s\r\n" % (len(block), block))
                conn.send(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered and closed before we were done
            r = conn.getresponse()
            status, body = r.status, r.read()
        finally:
            conn.close()
        assert status == 413 and b"200,000" in body

    @pytest.mark.parametrize("kind", ["text/plain", "application/json",
                                      "application/x-www-form-urlencoded"])
    def test_wrong_content_type(self, server, digit_pngs, kind):
        with open(digit_pngs["0"][0], "rb") as f:
            data = f.read()
        _check_refusal(server.post_image("/v1/predict", data, multipart=False, kind=kind), 415,
                       kind)

    def test_multipart_without_a_file(self, server):
        body, ctype = multipart_body({}, {"topk": "3"})
        _check_refusal(server.call("POST", "/v1/predict", body, {"Content-Type": ctype}), 400,
                       "no file")

    @pytest.mark.parametrize("path", ["/nope", "/v1/predict/../../etc/passwd", "/v2/predict"])
    def test_unknown_route(self, server, path):
        _check_refusal(server.call("GET", path), 404, "no route")

    def test_wrong_method(self, server):
        _check_refusal(server.call("GET", "/v1/predict"), 405, "GET")

    @pytest.mark.parametrize("topk", ["0", "-2", "three", "1.5", "100000"])
    def test_bad_topk(self, server, digit_pngs, topk):
        with open(digit_pngs["0"][0], "rb") as f:
            data = f.read()
        _check_refusal(server.post_image(f"/v1/predict?topk={topk}", data), 422, "topk")

    @pytest.mark.parametrize("query, words", [("target=seven", ["unknown class"]),
                                              ("target=12", ["out of range"]),
                                              ("patch=9", ["patch", "between 1 and 8"]),
                                              ("stride=0", ["stride"])])
    def test_bad_occlusion_options(self, server, digit_pngs, query, words):
        with open(digit_pngs["0"][0], "rb") as f:
            data = f.read()
        status = 422 if query == "stride=0" else 400
        _check_refusal(server.post_image(f"/v1/occlusion?{query}", data), status, *words)

    def test_a_path_is_not_read_and_a_file_name_not_written(self, server, tmp_path):
        """The body is the image, never a path to one; an upload's file name is never used."""
        _check_refusal(server.post_image("/v1/predict", b"/etc/hostname", multipart=False), 400,
                       "not an image")
        target = tmp_path / "written.png"
        r = server.post_image("/v1/predict", _png((8, 8)), filename=str(target))
        assert r.status == 200
        r = server.post_image("/v1/predict", _png((8, 8)), filename="../../../written.png")
        assert r.status == 200
        assert not target.exists() and not os.path.exists("/written.png")


def test_a_one_pixel_image_is_accepted_and_resized(server, predictor):
    """The evaluation preset resizes every image to the input size, so a 1x1 image is a
    flat one; refusing small images would refuse the digits themselves (8x8)."""
    data = _png((1, 1), (40, 40, 40))
    r = server.post_image("/v1/predict", data)
    assert r.status == 200
    want = predictor.predict(Image.open(io.BytesIO(data)), topk=5)[0]
    assert [t["index"] for t in r.json()["topk"]] == list(want.indices)


def test_many_bad_requests_leave_the_server_whole(server, digit_pngs):
    for _ in range(20):
        assert server.post_image("/v1/predict", b"\x89PNG\r\n\x1a\n garbage").status == 400
    with open(digit_pngs["4"][0], "rb") as f:
        assert server.post_image("/v1/predict", f.read()).status == 200
    assert server.proc.poll() is None
