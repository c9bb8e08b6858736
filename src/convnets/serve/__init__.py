"""``convnets serve``: a classification service with a web page, on FastAPI and uvicorn.

:class:`ServeSettings` defines every option once (:mod:`.settings`); :func:`create_app`
builds the ASGI application for a :class:`~convnets.Predictor` (the routes, :mod:`.app`;
the input limits and how an image is read, :mod:`.inputs`; the one-line JSON refusals,
:mod:`.replies`); :class:`Batcher` gathers concurrent requests into one forward pass
(:mod:`.batching`); :func:`bind` and :func:`serve` bind the address and run the app with
uvicorn (:mod:`.server`). The page is ``page/index.html``, plain HTML and JavaScript
served as it is.
"""
from __future__ import annotations

import importlib

__all__ = ["create_app", "Batcher", "BatchStats", "bind", "serve", "ServeSettings",
           "serve_options"]

# Imported on first use: the command line builds its flags from .settings without loading
# FastAPI and uvicorn.
_WHERE = {"create_app": "app", "Batcher": "batching", "BatchStats": "batching", "bind": "server",
          "serve": "server", "ServeSettings": "settings", "serve_options": "settings"}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
