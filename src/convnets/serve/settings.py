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
import math
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Callable

from ..engine.config import Option
from ..errors import ConfigError

__all__ = ["ServeSettings", "serve_options", "DEFAULT_MAX_PIXELS", "LOG_LEVELS", "check_port"]

# 25 megapixels: a 6,000 x 4,000 camera picture fits (phones take 12); decoded, about
# 100 MB, of which at most ``workers`` exist at once. The library's own default for
# training folders is twice this; a server shares its memory between clients.
DEFAULT_MAX_PIXELS = 25_000_000
LOG_LEVELS = ("debug", "info", "warning", "error")


def _whole(least: int, most: int | None = None) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        whole = isinstance(v, int) and not isinstance(v, bool)
        if most is not None:
            return None if whole and least <= v <= most else (f"must be between {least} and "
                                                              f"{most}, got {v!r}")
        return None if whole and v >= least else (f"must be a whole number of at least "
                                                  f"{least}, got {v!r}")
    return check


def _finite(least: float) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if (isinstance(v, bool) or not isinstance(v, (int, float)) or not least <= v < math.inf):
            return f"must be a finite number of at least {least:g}, got {v!r}"
        return None
    return check


def _text(v: Any) -> str | None:
    return None if isinstance(v, str) and v else f"must be a non-empty string, got {v!r}"


def _opt(default: Any, help: str, check: Callable[[Any], str | None], **kw) -> Any:
    return field(default=default, metadata={"option": Option(help=help, check=check, **kw)})


check_port = _whole(0, 65535)


@dataclass(frozen=True)
class ServeSettings:
    """How the service listens, batches and bounds what clients send; checked on creation
    (a ConfigError names the field). ``host``, ``port`` and ``log_level`` are for
    :func:`~convnets.serve.bind` and :func:`~convnets.serve.serve`; the rest for
    :func:`~convnets.serve.create_app`."""

    host: str = _opt("127.0.0.1", "address to listen on (127.0.0.1: this machine only)", _text,
                     flag="--host")
    port: int = _opt(8000, "TCP port (0: any free one)", check_port, flag="--port")
    max_batch: int = _opt(32, "most images in one forward pass (1: no batching)", _whole(1),
                          flag="--max-batch")
    max_wait_ms: float = _opt(10.0, "longest a forward pass waits for requests on their way "
                              "to join it (it never waits when none is)", _finite(0),
                              flag="--max-wait-ms")
    workers: int = _opt(2, "threads decoding uploaded images at once", _whole(1), flag="--workers")
    max_bytes: int = _opt(10_000_000, "largest request body accepted, bytes", _whole(1),
                          flag="--max-bytes")
    max_pixels: int = _opt(DEFAULT_MAX_PIXELS, "largest image accepted, pixels, checked before "
                           "decoding", _whole(1), flag="--max-pixels")
    log_level: str = _opt("info", "uvicorn's logging, access log included at info", _text,
                          flag="--log-level", choices=LOG_LEVELS)

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Each field's type and range (its Option's check), then its choices."""
        for f in fields(self):
            value, opt = getattr(self, f.name), f.metadata["option"]
            if problem := opt.check(value):
                raise ConfigError.of(f.name, problem)
            if opt.choices and value not in opt.choices:
                raise ConfigError.of(f.name, f"must be one of {', '.join(opt.choices)}, "
                                     f"got {value!r}")

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
    hints = typing.get_type_hints(ServeSettings)
    return [(f, f.metadata["option"], hints[f.name]) for f in fields(ServeSettings)]
