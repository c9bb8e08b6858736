"""``convnets serve``: a classification service with a web page, on FastAPI and uvicorn.

:func:`create_app` builds the ASGI application for a :class:`~convnets.Predictor`
(routes, input checks, one-line JSON errors; :mod:`.app`); :class:`Batcher` gathers
concurrent requests into one forward pass (:mod:`.batching`); :func:`serve` binds the
address and runs it with uvicorn (:mod:`.server`). The page is ``page/index.html``,
plain HTML and JavaScript served as it is.
"""
from .app import create_app
from .batching import Batcher, BatchStats
from .server import bind, serve

__all__ = ["create_app", "Batcher", "BatchStats", "bind", "serve"]
