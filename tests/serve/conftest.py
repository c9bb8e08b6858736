"""A real `convnets serve` in a subprocess on a free loopback port, and a run to serve."""
import http.client
import json
import os
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from convnets.engine.config import TrainConfig
from convnets.engine.train import fit

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src")


@pytest.fixture(scope="session")
def served_run(tmp_path_factory):
    """ResNet-20 at 8x8 trained one epoch on the digits 0-4: a real run directory, small
    and quick, right on most test digits."""
    run = str(tmp_path_factory.mktemp("runs") / "digits04")
    cfg = TrainConfig(model="resnet20", data="digits:0-4", input_size=[3, 8, 8], epochs=1,
                      batch_size=32, workers=0, device="cpu", deterministic=True)
    fit(cfg, run, log=lambda *_: None, progress=False)
    return run


@pytest.fixture(scope="session")
def digit_pngs(tmp_path_factory):
    """Test digits 0-4 as PNG files, three of each: {class: [paths]}."""
    from convnets.data.export import export_images

    out = tmp_path_factory.mktemp("digits") / "png"
    export_images("digits:0-4", str(out), split="test", per_class=3)
    return {c: sorted(str(p) for p in (out / c).iterdir()) for c in sorted(os.listdir(out))}


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


class Server:
    """`convnets serve TARGET --port 0 ...` in a subprocess; :meth:`call` speaks HTTP to it."""

    def __init__(self, target: str, *options: str, log_dir) -> None:
        env = {**os.environ, "PYTHONPATH": os.path.abspath(SRC), "OMP_NUM_THREADS": "1"}
        self.stderr_path = os.path.join(log_dir, f"serve-{uuid.uuid4().hex[:8]}.log")
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "convnets", "serve", target, "--port", "0",
             "--log-level", "warning", *options],
            stdout=subprocess.PIPE, stderr=self._stderr, env=env)
        first: list[bytes] = []
        reader = threading.Thread(target=lambda: first.append(self.proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(120)
        line = first[0].decode() if first else ""
        if "http://" not in line:
            self.stop()
            with open(self.stderr_path) as f:
                raise RuntimeError(f"the server did not start: {line!r} {f.read()[-2000:]}")
        self.url = line.split()[3]
        parts = urlsplit(self.url)
        self.host, self.port = parts.hostname, parts.port

    def call(self, method: str, path: str, body: bytes | None = None,
             headers: dict | None = None, timeout: float = 60) -> Reply:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def post_image(self, path: str, data: bytes, *, multipart: bool = True,
                   kind: str = "image/png", filename: str = "image.png") -> Reply:
        if multipart:
            body, ctype = multipart_body({"file": (filename, data, kind)})
            return self.call("POST", path, body, {"Content-Type": ctype})
        return self.call("POST", path, data, {"Content-Type": kind})

    def stats(self) -> dict:
        return self.call("GET", "/healthz").json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self._stderr.close()


def multipart_body(files: dict, fields: dict | None = None) -> tuple[bytes, str]:
    """A multipart/form-data body: ``files`` {name: (filename, bytes, type)}."""
    boundary = uuid.uuid4().hex
    out = b""
    for name, value in (fields or {}).items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                f"{value}\r\n").encode()
    for name, (filename, data, kind) in files.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                f"filename=\"{filename}\"\r\nContent-Type: {kind}\r\n\r\n").encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


@pytest.fixture(scope="session")
def server(served_run, tmp_path_factory):
    """The run served with the default batching and a body limit of 200 kB."""
    s = Server(served_run, "--max-bytes", "200000", log_dir=tmp_path_factory.mktemp("logs"))
    yield s
    s.stop()


@pytest.fixture(scope="session")
def predictor(served_run):
    from convnets import Predictor

    return Predictor.from_target(served_run, device="cpu")
