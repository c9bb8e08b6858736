"""Every ``convnets serve`` option, defined once: default, type, range and help.

:class:`ServeSettings` is to the server what :class:`~convnets.engine.config.TrainConfig`
is to training: each field carries an :class:`~convnets.engine.config.Option` (its flag,
help, choices and range check), :meth:`ServeSettings.check` runs the same checks for a
Python caller and for the command line, and :func:`serve_options` hands a command line
what it needs to generate its flags. :func:`~convnets.serve.create_app` takes the
batching and input limits from it; :func:`~convnets.serve.bind` and
:func:`~convnets.serve.serve` the address and the logging.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from ..errors import ConfigError
from ..options import Option, at_least, between, check_fields, non_empty, option, options_of

__all__ = ["ServeSettings", "serve_options", "DEFAULT_MAX_PIXELS", "LOG_LEVELS", "check_port"]

# 25 megapixels: a 6,000 x 4,000 camera picture fits (phones take 12); decoded, about
# 100 MB, of which at most ``workers`` exist at once. The library's own default for
# training folders is twice this; a server shares its memory between clients.
DEFAULT_MAX_PIXELS = 25_000_000
LOG_LEVELS = ("debug", "info", "warning", "error")


_PORT = between(0, 65535)


def check_port(v: Any) -> str | None:
    """What is wrong with ``v`` as a TCP port (0: any free one), or None."""
    if isinstance(v, bool) or not isinstance(v, int):
        return f"must be a whole number between 0 and 65535, got {v!r}"
    return _PORT(v)


@dataclass(frozen=True)
class ServeSettings:
    """How the service listens, batches and bounds what clients send; checked on creation
    (a ConfigError names the field). ``host``, ``port`` and ``log_level`` are for
    :func:`~convnets.serve.bind` and :func:`~convnets.serve.serve`; the rest for
    :func:`~convnets.serve.create_app`."""

    host: str = option("127.0.0.1", "address to listen on (127.0.0.1: this machine only)",
                       check=non_empty, flag="--host")
    port: int = option(8000, "TCP port (0: any free one)", check=check_port, flag="--port")
    max_batch: int = option(32, "most images in one forward pass (1: no batching)",
                            check=at_least(1), flag="--max-batch")
    max_wait_ms: float = option(10.0, "longest a forward pass waits for requests on their way "
                                "to join it (it never waits when none is)", check=at_least(0),
                                flag="--max-wait-ms")
    workers: int = option(2, "threads decoding uploaded images at once", check=at_least(1),
                          flag="--workers")
    max_bytes: int = option(10_000_000, "largest request body accepted, bytes",
                            check=at_least(1), flag="--max-bytes")
    max_pixels: int = option(DEFAULT_MAX_PIXELS, "largest image accepted, pixels, checked "
                             "before decoding", check=at_least(1), flag="--max-pixels")
    log_level: str = option("info", "uvicorn's logging, access log included at info",
                            flag="--log-level", choices=LOG_LEVELS)

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Each field's type, choices and range (its Option)."""
        check_fields(self)

    def replace(self, **changes: Any) -> "ServeSettings":
        """A copy with ``changes`` applied, checked; an unknown name is a ConfigError."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise ConfigError(f"unknown serve option {unknown[0]!r}; the options are "
                              f"{', '.join(f.name for f in fields(self))}")
        return dataclasses.replace(self, **changes)


def serve_options() -> list[tuple[dataclasses.Field, Option, type]]:
    """(field, option, value type) of every setting, for a command line to make its flags
    from: ``opt.flag``, ``type=kind``, ``default=f.default``, ``choices=opt.choices``,
    ``help=opt.help``; the parsed values go back through ``ServeSettings(**values)``."""
    return options_of(ServeSettings)
