"""The HTTP service: routes, input checks and error replies, around a :class:`Predictor`.

Routes (all JSON but the page):

- ``POST /v1/predict?topk=5``: the image as a multipart upload (any one file field) or as
  the raw request body (``Content-Type: image/...`` or ``application/octet-stream``);
  answers the top-k classes with names and probabilities, and the model's name.
- ``POST /v1/occlusion``: the same image input; answers Zeiler & Fergus's occlusion map
  of the predicted (or ``?target=``) class, as numbers and as PNGs (base64).
- ``GET /v1/model``, ``GET /healthz``: what is served, and the batcher's counters.
- ``GET /``: the web page; ``/docs`` and ``/openapi.json``: FastAPI's API description.

What a client sends is bounded before it costs memory or time: a body over
``max_bytes`` is refused with 413 from its Content-Length header, or, without one, as
soon as the bytes received pass the limit (it is never read whole); an image whose
header declares more than ``max_pixels`` pixels is refused before its pixels are
decoded (:func:`convnets.data.images.load_rgb`). Images are decoded from memory only:
no request names a file, and nothing is written but what the multipart parser spools.
Every refusal is a 4xx with one line of JSON, ``{"error": "..."}``; the server goes on.
"""
from __future__ import annotations

import asyncio
import base64
import io
import math
import os
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..data.images import load_rgb
from ..errors import ConfigError, ConvnetsError
from ..inference.predict import Predictor
from .batching import Batcher

__all__ = ["create_app", "ServeError", "BodyTooLarge", "UnsupportedMediaType",
           "DEFAULT_MAX_PIXELS", "MAX_OCCLUSION_POSITIONS"]

# 25 megapixels: a 6,000 x 4,000 camera picture fits (phones take 12); decoded, about
# 100 MB, of which at most ``workers`` exist at once. The library's own default for
# training folders is twice this; a server shares its memory between clients.
DEFAULT_MAX_PIXELS = 25_000_000
# Positions of the occluding square per map: a 16 x 16 grid (the default stride) is 256
# forward passes; a client asking for stride 1 on a 224-pixel input would ask for 50,176.
MAX_OCCLUSION_POSITIONS = 1024
_IMAGE_TYPES = ("image/", "application/octet-stream")


class ServeError(ConvnetsError):
    """A request the server refuses; ``status`` is its HTTP status code."""

    status = 400


class BodyTooLarge(ServeError):
    status = 413


class UnsupportedMediaType(ServeError):
    status = 415


# --- the body limit, before any route reads a byte -----------------------------------------

class _LimitBody:
    """ASGI middleware: 413 for a body over ``max_bytes``, told by its Content-Length or
    found while it streams in (the route reading it then gets :class:`BodyTooLarge`)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            text = (f"the body is {int(length):,} bytes, more than the limit of "
                    f"{self.max_bytes:,}" if length.isdigit() else "bad Content-Length header")
            response = JSONResponse({"error": text}, status_code=413 if length.isdigit() else 400,
                                    headers={"Connection": "close"})
            return await response(scope, receive, send)
        received = 0

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(f"the body is more than the limit of {self.max_bytes:,} bytes")
            return message

        await self.app(scope, limited_receive, send)


# --- reading an image from a request -------------------------------------------------------

async def _image_bytes(request: Request) -> bytes:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=8)
        try:
            upload = next((v for v in form.values() if isinstance(v, UploadFile)), None)
            if upload is None:
                raise ServeError("the multipart form holds no file: send the image as a file "
                                 "field (e.g. curl -F file=@digit.png)")
            return await upload.read()
        finally:
            await form.close()
    if kind and not kind.startswith(_IMAGE_TYPES):
        raise UnsupportedMediaType(f"Content-Type {kind} is not an image: send image/* or "
                                   "application/octet-stream, or a multipart/form-data upload")
    return await request.body()


class _Model:
    """The served network with what the routes need besides it."""

    def __init__(self, predictor: Predictor, *, max_batch: int, max_wait_ms: float,
                 workers: int, max_pixels: int) -> None:
        self.predictor = predictor
        self.batcher = Batcher(predictor.probabilities, max_batch=max_batch,
                               max_wait_ms=max_wait_ms)
        self.workers, self.max_pixels = workers, max_pixels
        self.decoding: asyncio.Semaphore | None = None
        self.parameters = sum(p.numel() for p in predictor.model.parameters())

    def _decode(self, data: bytes) -> torch.Tensor:
        return self.predictor.transform(load_rgb(data, max_pixels=self.max_pixels))

    async def input_of(self, request: Request) -> torch.Tensor:
        """The request's image as the network's input: decoded and preprocessed on a
        thread (at most ``workers`` at once), never on the event loop."""
        data = await _image_bytes(request)
        assert self.decoding is not None
        async with self.decoding:
            return await run_in_threadpool(self._decode, data)


def _png(rgb: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _heat_rgba(prob: np.ndarray, height: int, width: int, stride: int) -> np.ndarray:
    """The map (rows, cols) as an RGBA picture to lay over the input: cell (i, j) covers pixels
    ``[i*stride, (i+1)*stride)``. The lowest probability on the map (what the class needs
    most) is brightest, the highest black: scaled to the map's own range, as the paper's
    Fig. 7 is, since a confident network's probabilities may move only in the third
    decimal. A map without any change is black."""
    from matplotlib import colormaps

    low, high = float(prob.min()), float(prob.max())
    need = (high - prob) / (high - low) if high - low > 1e-12 else np.zeros_like(prob)
    cells = np.repeat(np.repeat(need, stride, axis=0), stride, axis=1)[:height, :width]
    rgba = colormaps["inferno"](cells)
    # Opaque where needed, clear where not: laid over the input, the parts the class
    # does not need keep their own look instead of being darkened.
    rgba[..., 3] = 0.85 * cells
    return (rgba * 255).round().astype(np.uint8)


# --- the app -------------------------------------------------------------------------------

def create_app(predictor: Predictor, *, max_batch: int = 32, max_wait_ms: float = 10.0,
               workers: int = 2, max_bytes: int = 10_000_000,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> FastAPI:
    """The service for ``predictor``; see the module docstring. Run it with any ASGI
    server (``convnets serve`` uses uvicorn)."""
    from ..inspect.visualize import occlusion
    from ..inspect.visualize.common import to_display

    for name, value in (("max_batch", max_batch), ("workers", workers),
                        ("max_bytes", max_bytes), ("max_pixels", max_pixels)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError.of(name, f"must be a whole number of at least 1, got {value!r}")
    if not 0 <= max_wait_ms < math.inf:
        raise ConfigError.of("max_wait_ms", f"must be a finite number of at least 0, got "
                             f"{max_wait_ms!r}")
    served = _Model(predictor, max_batch=max_batch, max_wait_ms=max_wait_ms, workers=workers,
                    max_pixels=max_pixels)
    page = resources.files(__package__).joinpath("page", "index.html").read_text(encoding="utf-8")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        served.decoding = asyncio.Semaphore(workers)
        served.batcher.start()
        yield
        await served.batcher.stop()

    app = FastAPI(title="convnets serve", version="1",
                  description=f"Image classification with {predictor.model_name}.",
                  lifespan=lifespan)
    app.state.served = served

    # --- errors: one line of JSON each ---

    @app.exception_handler(ServeError)
    async def refused(request: Request, err: ServeError) -> JSONResponse:
        headers = {"Connection": "close"} if err.status == 413 else None
        return JSONResponse({"error": str(err)}, status_code=err.status, headers=headers)

    @app.exception_handler(ConvnetsError)  # a bad image, a bad class name, patch or stride
    async def bad_input(request: Request, err: ConvnetsError) -> JSONResponse:
        return JSONResponse({"error": str(err)}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        text = err.detail
        if err.status_code == 404 and text == "Not Found":
            text = f"no route {request.method} {request.url.path} (see /docs)"
        elif err.status_code == 405:
            text = f"{request.method} is not allowed on {request.url.path} (see /docs)"
        return JSONResponse({"error": str(text)}, status_code=err.status_code,
                            headers=getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422)

    # --- routes ---

    image_body = {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "file": {"type": "string", "format": "binary"}}}},
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/healthz")
    async def healthz() -> dict:
        """Alive, with the batcher's counters."""
        return {"status": "ok", **served.batcher.snapshot()}

    @app.get("/v1/model")
    async def model() -> dict:
        """The served network: name, classes, input, parameters, batching."""
        p = predictor
        return {"model": p.model_name, "classes": p.classes, "num_classes": len(p.classes),
                "input_size": list(p.input_size), "parameters": served.parameters,
                "preset": p.preset, "mean": list(p.mean), "std": list(p.std),
                "weights": [os.path.basename(w) for w in p.weights],
                "ensemble_members": len(p.members),
                "batching": {"max_batch": max_batch, "max_wait_ms": max_wait_ms,
                             **served.batcher.snapshot()}}

    @app.post("/v1/predict", openapi_extra=image_body)
    async def predict(request: Request,
                      topk: int = Query(5, ge=1, le=1000, description="classes to return")) -> dict:
        """The top-k classes of one image, most probable first."""
        with served.batcher.arriving():
            waiting = served.batcher.enqueue(await served.input_of(request))
        probs = await waiting
        values, indices = probs.topk(min(topk, len(predictor.classes)))
        return {"model": predictor.model_name,
                "topk": [{"index": i, "class": predictor.classes[i], "probability": v}
                         for v, i in zip(values.tolist(), indices.tolist())]}

    @app.post("/v1/occlusion", openapi_extra=image_body)
    async def occlusion_map(request: Request,
                            target: str | None = Query(None, description="class name or index "
                                                       "(default: the predicted class)"),
                            patch: int | None = Query(None, ge=1, description="side of the grey "
                                                      "square, input pixels"),
                            stride: int | None = Query(None, ge=1, description="step between "
                                                       "positions, input pixels")) -> dict:
        """Zeiler & Fergus's occlusion map: the class's probability with a grey square at
        each position, as numbers (``prob[row][col]``) and as PNGs of the input's size."""
        x = await served.input_of(request)
        _, h, w = x.shape
        step = stride if stride is not None else max(1, min(h, w) // 16)
        positions = -(-h // step) * -(-w // step)
        if positions > MAX_OCCLUSION_POSITIONS:
            raise ServeError(f"stride {step} gives {positions:,} positions on a {h}x{w} input, "
                             f"more than {MAX_OCCLUSION_POSITIONS:,}: give a larger stride")
        result = await served.batcher.run_alone(
            lambda: occlusion(predictor.model, x.to(predictor.device), target=target,
                              classes=predictor.classes, patch=patch, stride=stride))
        view = (to_display(x, predictor.mean, predictor.std) * 255).round().astype(np.uint8)
        return {"model": predictor.model_name, "target": result.target,
                "target_class": predictor.classes[result.target],
                "probability": float(result.probs[result.target]),
                "patch": result.patch, "stride": result.stride,
                "prob": result.prob.astype(float).round(6).tolist(),
                "heatmap_png": _png(_heat_rgba(result.prob, h, w, result.stride)),
                "input_png": _png(view)}

    app.add_middleware(_LimitBody, max_bytes=max_bytes)
    return app
