"""``convnets serve``: a classification service for a run, weights file or model. Its
flags are generated from :class:`convnets.serve.settings.ServeSettings`, which defines,
checks and documents every option once."""
from __future__ import annotations

import argparse
from dataclasses import fields

from .common import add_option_flags
from .targets import add_target_arguments, note_untrained

__all__ = ["register"]


def register(sub) -> None:
    from ..serve.settings import serve_options

    p = sub.add_parser("serve", help="a classification service with a web page for a run, "
                                     "weights file or model (HTTP, JSON API)")
    add_target_arguments(p, ema="use")
    add_option_flags(p, serve_options(), defaults=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from ..inference.predict import Predictor
    from ..serve import bind, create_app, serve
    from ..serve.settings import ServeSettings

    settings = ServeSettings(**{f.name: getattr(args, f.name) for f in fields(ServeSettings)})
    sock = bind(settings.host, settings.port)  # first: a port in use is said before a model loads
    try:
        predictor = Predictor.from_target(args.target, model=args.model, device=args.device,
                                          ema=args.ema)
        app = create_app(predictor, settings)
        note_untrained(predictor, "serving")
    except BaseException:
        sock.close()
        raise
    serve(app, sock, log_level=settings.log_level,
          announce=lambda url: print(f"serving {predictor.model_name} at {url} (API: {url}docs; "
                                     "Ctrl-C stops)", flush=True))
