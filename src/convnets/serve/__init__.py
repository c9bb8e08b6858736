"""``convnets serve``: a classification service with a web page, on FastAPI and uvicorn.

:class:`ServeSettings` defines every option once (:mod:`.settings`); :func:`create_app`
builds the ASGI application for a :class:`~convnets.Predictor` (the routes, :mod:`.app`;
the input limits and how an image is read, :mod:`.inputs`; the one-line JSON refusals,
:mod:`.replies`); :class:`Batcher` gathers concurrent requests into one forward pass
(:mod:`.batching`); :func:`bind` and :func:`serve` bind the address and run the app with
uvicorn (:mod:`.server`). The page is ``page/index.html``, plain HTML and JavaScript
served as it is.
"""
from .app import create_app
from .batching import Batcher, BatchStats
from .server import bind, serve
from .settings import ServeSettings, serve_options

__all__ = ["create_app", "Batcher", "BatchStats", "bind", "serve", "ServeSettings",
           "serve_options"]
