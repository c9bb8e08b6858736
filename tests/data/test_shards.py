"""Shards: written from an image folder with the original bytes, read back as the same
samples (locally and over HTTP), bad images skipped and named, a damaged shard one line or
a per-image skip (never a hang), and WebDataset reading the same tars."""
import functools
import http.server
import os
import threading

import pytest
import torch
from PIL import Image

from convnets.cli import main
from convnets.data import open_dataset
from convnets.data.shards import write_shards
from convnets.errors import DataError
from tests.helpers import within_seconds

KW = dict(input_size=(3, 8, 8), train_transform=False)


def _image(path, value, fmt="PNG"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (10, 9), (value, 255 - value, value // 2)).save(path, format=fmt)


@pytest.fixture
def folder(tmp_path):
    """3 classes of 7 training PNGs (and one bad file), one JPEG each for testing."""
    root = tmp_path / "images"
    for c in range(3):
        for k in range(7):
            _image(root / "train" / f"class{c}" / f"{k}.png", 30 * c + k)
        _image(root / "val" / f"class{c}" / "v.jpg", 40 * c, "JPEG")
    (root / "train" / "class1" / "bad.png").write_bytes(b"not an image")
    return root


def _same(a, b):
    assert len(a) == len(b) and a.classes == b.classes and a.targets == b.targets
    assert (a.preset, a.mean, a.std) == (b.preset, b.mean, b.std)
    for i in range(len(a)):
        x, y = a[i], b[i]
        assert y[1] == x[1] and torch.equal(y[0], x[0])


def test_shards_hold_the_folder_and_read_back_as_it(tmp_path, folder, capsys):
    out = tmp_path / "shards"
    assert main(["shards", str(folder), str(out), "--shard-size", "2KB", "--workers", "2"]) == 0
    printed = capsys.readouterr().out
    assert "train: 21 images in" in printed and "val: 3 images in" in printed
    assert len([n for n in os.listdir(out) if n.startswith("train-")]) > 1  # several shards
    (folder / "train" / "class1" / "bad.png").unlink()  # the shards skipped it
    for split in ("train", "test"):
        _same(open_dataset(str(folder), split, **KW), open_dataset(f"shards:{out}", split, **KW))
    # The original bytes, not a re-encoding; the bad file skipped and named.
    ds = open_dataset(f"shards:{out}", "test", **KW)
    assert ds._bytes(0) == (folder / "val" / "class0" / "v.jpg").read_bytes()
    import json

    skipped = json.loads((out / "index.json").read_text())["skipped"]
    assert len(skipped) == 1 and "bad.png" in skipped[0]
    assert main(["shards", str(folder), str(out)]) == 2  # never overwrites
    assert "exists" in capsys.readouterr().err


def test_a_truncated_shard_is_one_line_and_a_corrupt_image_is_skipped(tmp_path, folder):
    out = str(tmp_path / "shards")
    (folder / "train" / "class1" / "bad.png").unlink()
    index = write_shards(str(folder), out, shard_bytes=10**6, log=lambda _: None)
    shard = os.path.join(out, "train-000000.tar")
    data = open(shard, "rb").read()
    # Corrupt the bytes of image 2 inside the shard: that image is skipped and named.
    _, offset, size, _, name = index["splits"]["train"]["samples"][2]
    broken = data[:offset] + b"\0" * size + data[offset + size:]
    open(shard, "wb").write(broken)
    with within_seconds(20):
        ds = open_dataset(f"shards:{out}", "train", **KW)
        items = [ds[i] for i in range(len(ds))]
    assert len(items) == 21 and ds.bad_files() == 1
    assert name in ds.bad_file_report()[0][0]
    open(shard, "wb").write(broken[: len(broken) // 2])
    with within_seconds(20), pytest.raises(DataError, match="shard train-000000.tar is truncated"):
        open_dataset(f"shards:{out}", "train", **KW)


class _Ranges(http.server.SimpleHTTPRequestHandler):
    """A file server that answers HTTP range requests (the standard library's does not)."""

    def do_GET(self):
        spec = self.headers.get("Range")
        path = self.translate_path(self.path)
        if not spec or not os.path.isfile(path):
            return super().do_GET()
        first, last = (int(v) for v in spec.removeprefix("bytes=").split("-"))
        with open(path, "rb") as f:
            f.seek(first)
            body = f.read(last - first + 1)
        self.send_response(206)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_shards_read_over_http(tmp_path, folder):
    out = tmp_path / "shards"
    write_shards(str(folder), str(out), shard_bytes=4096, log=lambda _: None)
    (folder / "train" / "class1" / "bad.png").unlink()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_Ranges, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with within_seconds(30):
            url = f"http://127.0.0.1:{server.server_address[1]}/shards"
            _same(open_dataset(f"shards:{out}", "train", **KW), open_dataset(f"shards:{url}", "train", **KW))
    finally:
        server.shutdown()


def test_webdataset_reads_the_same_tars(tmp_path, folder):
    wds = pytest.importorskip("webdataset")
    out = tmp_path / "shards"
    index = write_shards(str(folder), str(out), shard_bytes=10**6, log=lambda _: None)
    tars = [str(out / s["name"]) for s in index["splits"]["val"]["shards"]]
    got = [(s["jpg"], int(s["cls"])) for s in wds.WebDataset(tars, shardshuffle=False)]
    assert got == [((folder / "val" / f"class{c}" / "v.jpg").read_bytes(), c) for c in range(3)]


def test_a_server_without_range_requests_is_one_line(tmp_path, folder):
    out = tmp_path / "shards"
    write_shards(str(folder), str(out), shard_bytes=10**6, log=lambda _: None)
    plain = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    plain.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), plain)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with within_seconds(30), pytest.raises(DataError, match="does not answer HTTP range requests"):
            ds = open_dataset(f"shards:http://127.0.0.1:{server.server_address[1]}/shards", "train", **KW)
            ds[3]
    finally:
        server.shutdown()
