"""Options defined once: a dataclass field per option, carrying an :class:`Option` record
(help, flag, choices, range check, parser), checked the same way for a Python caller, a
command line and a JSON file read back.

:class:`~convnets.engine.config.TrainConfig` (training) and
:class:`~convnets.serve.settings.ServeSettings` (the service) are built on it; a command
line generates its flags from :func:`options_of` (``convnets.cli.common.add_option_flags``).
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Callable

from .errors import ConfigError

__all__ = ["Option", "option", "options_of", "check_fields", "coerce", "at_least", "in_range",
           "positive", "between", "non_empty"]

Check = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class Option:
    """How a field appears on the command line and what values it takes.

    ``flag`` is the command-line name (None: not a flag); ``check(value)`` returns what is
    wrong with a value, or None; ``parse`` turns the flag's text into a value (default:
    the field's type); ``const`` is the value of a flag given without one; ``resume``
    marks training fields that may change when a run is resumed (they do not change what
    it computes)."""

    help: str = ""
    flag: str | None = None
    choices: tuple | None = None
    check: Check | None = None
    parse: Callable[[str], Any] | None = None
    const: Any = None
    metavar: str | None = None
    resume: bool = False


def option(default: Any, help: str, **kw) -> Any:
    """A dataclass field that is an option; ``default`` may be a function that returns it
    (read when an instance is made) or a list (copied for each instance)."""
    meta = {"option": Option(help=help, **kw)}
    if callable(default):
        return field(default_factory=default, metadata=meta)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def options_of(cls: type, *, flags_only: bool = True) -> list[tuple[dataclasses.Field, Option, Any]]:
    """(field, option, value type) of each field of ``cls`` (only those with a flag, unless
    ``flags_only`` is False); the value type of ``X | None`` is ``X``."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        opt: Option = f.metadata["option"]
        if opt.flag or not flags_only:
            args = [a for a in typing.get_args(hints[f.name]) if a is not type(None)]
            out.append((f, opt, args[0] if args else hints[f.name]))
    return out


def check_fields(obj: Any) -> None:
    """Each field of the dataclass instance ``obj`` coerced to its type (frozen or not),
    then checked against its option's choices and range; a ConfigError names the field."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        value = coerce(f.name, getattr(obj, f.name), hints[f.name])
        object.__setattr__(obj, f.name, value)
        opt: Option = f.metadata["option"]
        if opt.choices and value is not None and value not in opt.choices:
            raise ConfigError.of(f.name, f"must be one of {', '.join(map(str, opt.choices))}, "
                                 f"got {value!r}")
        if opt.check and value is not None and (problem := opt.check(value)):
            raise ConfigError.of(f.name, problem)


def coerce(name: str, value: Any, hint: Any) -> Any:
    """``value`` as the field's type, or a ConfigError: JSON files and Python callers can
    hand in anything (``"epochs": "3"``, ``"milestones": null``, ``True`` for a count)."""
    args = typing.get_args(hint)
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError.of(name, "must be given (got nothing)")
    kind = next((a for a in args if a is not type(None)), hint) if args and type(None) in args else hint
    origin = typing.get_origin(kind)
    if origin is list:
        if not isinstance(value, (list, tuple)) or not all(_is_int(v) for v in value):
            raise ConfigError.of(name, f"must be a list of whole numbers, got {value!r}")
        return [int(v) for v in value]
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError.of(name, f"must be true or false, got {value!r}")
        return value
    if kind is int:
        if not _is_int(value):
            raise ConfigError.of(name, f"must be a whole number, got {value!r}")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError.of(name, f"must be a finite number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError.of(name, f"must be a string, got {value!r}")
        return value
    raise TypeError(f"option {name}: unsupported annotation {hint!r}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# --- range checks ----------------------------------------------------------------------

def at_least(low: float) -> Check:
    return lambda v: None if v >= low else f"must be at least {low:g}, got {v}"


def in_range(low: float, high: float) -> Check:
    """``low <= v < high``."""
    return lambda v: None if low <= v < high else f"must be in [{low:g}, {high:g}), got {v}"


def between(low: int, high: int) -> Check:
    """``low <= v <= high``, for whole numbers."""
    return lambda v: None if low <= v <= high else f"must be between {low} and {high}, got {v}"


def positive(v: float) -> str | None:
    return None if v > 0 else f"must be positive, got {v}"


def non_empty(v: str) -> str | None:
    return None if v else "must not be empty"
