"""The HTTP service around a :class:`~convnets.Predictor`: what each route answers.

Routes (all JSON but the page):

- ``POST /v1/predict?topk=5``: the image as a multipart upload (any one file field) or as
  the raw request body (``Content-Type: image/...`` or ``application/octet-stream``);
  answers the top-k classes with names and probabilities, and the model's name.
- ``POST /v1/occlusion``: the same image input; answers Zeiler & Fergus's occlusion map
  of the predicted (or ``?target=``) class, as numbers and as PNGs (base64).
- ``GET /v1/model``, ``GET /healthz``: what is served, and the batcher's counters.
- ``GET /``: the web page; ``/docs`` and ``/openapi.json``: FastAPI's API description.

The pieces: the options (:class:`~.settings.ServeSettings`), the input limits and how an
image is read (:mod:`.inputs`), the refusals, each one line of JSON
``{"error": "..."}`` after which the server goes on (:mod:`.replies`). Here,
:class:`Service` holds what the routes share and answers each of them, and
:func:`create_app` puts the pieces together.
"""
from __future__ import annotations

import asyncio
import base64
import io
import os
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any, AsyncIterator, Callable

import numpy as np
import torch
from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from ..data.images import load_rgb
from ..errors import ConfigError
from ..inference.predict import Predictor
from .batching import Batcher
from .inputs import (MAX_OCCLUSION_POSITIONS, LimitBody, check_occlusion_positions, image_body,
                     image_bytes, smallest_stride)
from .replies import (BodyTooLarge, ServeError, UnsupportedMediaType, add_error_replies,
                      error_responses)
from .settings import DEFAULT_MAX_PIXELS, ServeSettings

__all__ = ["create_app", "Service", "ServeError", "BodyTooLarge", "UnsupportedMediaType",
           "DEFAULT_MAX_PIXELS", "MAX_OCCLUSION_POSITIONS"]


class Service:
    """What the routes share (the predictor, its :class:`Batcher`, the bound on decoding
    threads) and the answer of each route; :func:`create_app` registers them."""

    def __init__(self, predictor: Predictor, settings: ServeSettings) -> None:
        if predictor.model is None:
            raise ConfigError(
                f"convnets serve runs PyTorch networks only (a run directory, a weights file or "
                f"a model name): {', '.join(predictor.weights) or predictor.model_name} runs on "
                f"{predictor.backend.name}, which has no layers for occlusion maps to look "
                "into; serve the run it was exported from")
        self.predictor, self.settings = predictor, settings
        self.batcher = Batcher(predictor.probabilities, max_batch=settings.max_batch,
                               max_wait_ms=settings.max_wait_ms)
        self.decoding: asyncio.Semaphore | None = None  # made in the event loop, by running()
        self.parameters = sum(p.numel() for p in predictor.model.parameters())
        self.page = resources.files(__package__).joinpath("page", "index.html").read_text(
            encoding="utf-8")

    @asynccontextmanager
    async def running(self, app: FastAPI) -> AsyncIterator[None]:
        """The app's lifespan: the batcher runs while the server does."""
        self.decoding = asyncio.Semaphore(self.settings.workers)
        self.batcher.start()
        yield
        await self.batcher.stop()

    # --- the input -----------------------------------------------------------------------

    def _decode(self, data: bytes) -> torch.Tensor:
        return self.predictor.transform(load_rgb(data, max_pixels=self.settings.max_pixels))

    async def input_of(self, request: Request) -> torch.Tensor:
        """The request's image as the network's input: decoded and preprocessed on a
        thread (at most ``workers`` at once), never on the event loop."""
        data = await image_bytes(request)
        assert self.decoding is not None
        async with self.decoding:
            return await run_in_threadpool(self._decode, data)

    # --- the routes ----------------------------------------------------------------------

    async def index(self) -> HTMLResponse:
        return HTMLResponse(self.page)

    async def healthz(self) -> dict:
        """Alive, with the batcher's counters."""
        return {"status": "ok", **self.batcher.snapshot()}

    async def model(self) -> dict:
        """The served network: name, classes, input, parameters, batching."""
        p = self.predictor
        return {"model": p.model_name, "classes": p.classes, "num_classes": len(p.classes),
                "input_size": list(p.input_size), "parameters": self.parameters,
                "preset": p.preset, "mean": list(p.mean), "std": list(p.std),
                "weights": [os.path.basename(w) for w in p.weights],
                "ensemble_members": len(p.members),
                "batching": {"max_batch": self.settings.max_batch,
                             "max_wait_ms": self.settings.max_wait_ms,
                             **self.batcher.snapshot()}}

    async def predict(self, request: Request,
                      topk: int = Query(5, ge=1, le=1000, description="classes to return")) -> dict:
        """The top-k classes of one image, most probable first."""
        with self.batcher.arriving():
            waiting = self.batcher.enqueue(await self.input_of(request))
        probs = await waiting
        p = self.predictor
        values, indices = probs.topk(min(topk, len(p.classes)))
        return {"model": p.model_name,
                "topk": [{"index": i, "class": p.classes[i], "probability": v}
                         for v, i in zip(values.tolist(), indices.tolist())]}

    async def occlusion(self, request: Request, target: str | None, patch: int | None,
                        stride: int | None) -> dict:
        """Zeiler & Fergus's occlusion map of the image ``request`` carries, for the route
        :func:`_occlusion_route` describes."""
        from ..inspect.visualize import occlusion
        from ..inspect.visualize.common import to_display
        from ..inspect.visualize.occlusion import default_stride

        p = self.predictor
        x = await self.input_of(request)
        _, h, w = x.shape
        check_occlusion_positions(h, w, stride if stride is not None else default_stride(h, w))
        result = await self.batcher.run_alone(
            lambda: occlusion(p.model, x.to(p.device), target=target, classes=p.classes,
                              patch=patch, stride=stride))
        view = (to_display(x, p.mean, p.std) * 255).round().astype(np.uint8)
        return {"model": p.model_name, "target": result.target,
                "target_class": p.classes[result.target],
                "probability": float(result.probs[result.target]),
                "patch": result.patch, "stride": result.stride,
                "prob": result.prob.astype(float).round(6).tolist(),
                "heatmap_png": _png(_heat_rgba(result.prob, h, w, result.stride)),
                "input_png": _png(view)}


def _occlusion_route(service: Service) -> Callable[..., Any]:
    """The ``/v1/occlusion`` endpoint, its query described with the bounds of the served
    model: the class names and indices ``target`` takes, the input's side for ``patch``
    and ``stride``, and the smallest stride within :data:`MAX_OCCLUSION_POSITIONS`. The
    bounds are told, not enforced here: occlusion() and the positions check answer a value
    beyond them with a 400 that says why, FastAPI a wrong type with a 422."""
    p = service.predictor
    _, h, w = p.input_size
    targets = list(dict.fromkeys([*p.classes, *map(str, range(len(p.classes)))]))

    async def occlusion_map(
            request: Request,
            target: str | None = Query(None, description="class name or index (default: the "
                                       "predicted class)", json_schema_extra={"enum": targets}),
            patch: int | None = Query(None, ge=1, description="side of the grey square, input "
                                      "pixels", json_schema_extra={"maximum": min(h, w)}),
            stride: int | None = Query(None, ge=1, description="step between positions, input "
                                       "pixels", json_schema_extra={
                                           "minimum": smallest_stride(h, w),
                                           "maximum": min(h, w)})) -> dict:
        """Zeiler & Fergus's occlusion map: the class's probability with a grey square at
        each position, as numbers (``prob[row][col]``) and as PNGs of the input's size."""
        return await service.occlusion(request, target, patch, stride)

    return occlusion_map


def _add_routes(app: FastAPI, service: Service) -> None:
    image_route: dict[str, Any] = dict(methods=["POST"], openapi_extra=image_body(),
                                       responses=error_responses(400, 413, 415, 422))
    app.add_api_route("/", service.index, methods=["GET"], response_class=HTMLResponse,
                      include_in_schema=False, name="index")
    app.add_api_route("/healthz", service.healthz, methods=["GET"], name="healthz")
    app.add_api_route("/v1/model", service.model, methods=["GET"], name="model")
    app.add_api_route("/v1/predict", service.predict, name="predict", **image_route)
    app.add_api_route("/v1/occlusion", _occlusion_route(service), name="occlusion_map",
                      **image_route)


def create_app(predictor: Predictor, settings: ServeSettings | None = None,
               **options: Any) -> FastAPI:
    """The service for ``predictor`` (a PyTorch one: an ONNX predictor is refused with a
    ConfigError); see the module docstring. ``settings``, with any of its fields replaced
    by ``options`` (``max_batch=8``), bounds batching and inputs; a bad value is a
    ConfigError naming it. Run the app with any ASGI server (``convnets serve`` uses
    uvicorn)."""
    settings = (settings or ServeSettings()).replace(**options)
    service = Service(predictor, settings)
    app = FastAPI(title="convnets serve", version="1",
                  description=f"Image classification with {predictor.model_name}.",
                  lifespan=service.running)
    app.state.served = service
    add_error_replies(app)
    _add_routes(app, service)
    app.add_middleware(LimitBody, max_bytes=settings.max_bytes)
    return app


# --- pictures for the occlusion answer -----------------------------------------------------

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
