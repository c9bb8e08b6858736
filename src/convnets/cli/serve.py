"""``convnets serve``: a classification service for a run, weights file or model
(:func:`convnets.serve.create_app`, whose defaults and checks the flags use)."""
from __future__ import annotations

import argparse

from .common import LibraryDefault, given
from .targets import add_target_arguments, note_untrained

__all__ = ["register"]

_APP_OPTIONS = ("max_batch", "max_wait_ms", "workers", "max_bytes", "max_pixels")


def _default(name: str) -> LibraryDefault:
    return LibraryDefault("convnets.serve.app", "create_app", name)


def register(sub) -> None:
    p = sub.add_parser("serve", help="a classification service with a web page for a run, "
                                     "weights file or model (HTTP, JSON API)")
    add_target_arguments(p, ema="use")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0: any free one)")
    p.add_argument("--max-batch", type=int, default=_default("max_batch"),
                   help="most images in one forward pass (default %(default)s; 1: no batching)")
    p.add_argument("--max-wait-ms", type=float, default=_default("max_wait_ms"),
                   help="longest a forward pass waits for requests on their way to join it "
                        "(default %(default)s; it never waits when none is)")
    p.add_argument("--workers", type=int, default=_default("workers"),
                   help="threads decoding uploaded images at once (default %(default)s)")
    p.add_argument("--max-bytes", type=int, default=_default("max_bytes"),
                   help="largest request body accepted, bytes (default %(default)s)")
    p.add_argument("--max-pixels", type=int, default=_default("max_pixels"),
                   help="largest image accepted, pixels, checked before decoding "
                        "(default %(default)s)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="uvicorn's logging, access log included at info (default info)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from ..inference.predict import Predictor
    from ..serve import bind, create_app, serve

    sock = bind(args.host, args.port)  # first: a port in use is said before a model loads
    try:
        predictor = Predictor.from_target(args.target, model=args.model, device=args.device,
                                          ema=args.ema)
        app = create_app(predictor, **given(args, _APP_OPTIONS))  # checks each option
        note_untrained(predictor, "serving")
    except BaseException:
        sock.close()
        raise
    serve(app, sock, log_level=args.log_level,
          announce=lambda url: print(f"serving {predictor.model_name} at {url} (API: {url}docs; "
                                     "Ctrl-C stops)", flush=True))
