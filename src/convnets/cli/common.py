"""What every command shares: the one-line parser, option names as flags, notes and errors
on stderr, and library defaults read where they are defined."""
from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from typing import Callable

from ..errors import ConfigError, ConvnetsError

__all__ = ["UserError", "Parser", "Interrupted", "LibraryDefault", "LibraryChoices", "as_flags",
           "add_option_flags", "flag_type", "given", "note", "error_line", "config_help"]


class UserError(ConfigError):
    """A problem with the command line itself, reported as one line."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        raise UserError(f"{message} (see `{self.prog} --help`)")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a command that can be continued; ``hint`` says how."""

    def __init__(self, hint: str) -> None:
        super().__init__(hint)
        self.hint = hint


class LibraryDefault:
    """A flag's default that is a library function's own: shown in ``--help`` (the module
    is imported only then) and never passed on, so the function applies it itself."""

    def __init__(self, module: str, function: str, parameter: str) -> None:
        self.module, self.function, self.parameter = module, function, parameter

    def __str__(self) -> str:
        func = getattr(importlib.import_module(self.module), self.function)
        return str(inspect.signature(func).parameters[self.parameter].default)


class LibraryChoices:
    """A flag's choices that are a library module's constant, read when the flag is used or
    its help shown, so that building the parser imports nothing heavy."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def _values(self) -> tuple:
        return tuple(getattr(importlib.import_module(self.module), self.name))

    def __contains__(self, value: object) -> bool:
        return value in self._values()

    def __iter__(self):
        return iter(self._values())


def add_option_flags(p: argparse.ArgumentParser, options, *, defaults: bool) -> None:
    """One flag per option (``convnets.options.options_of``): its type or parser, choices,
    help and metavar. With ``defaults`` each flag's default is its field's, shown in the
    help; without, every default is None, meaning "as the recipe or saved run says"."""
    for f, opt, kind in options:
        metavar = opt.metavar or opt.flag.lstrip("-").upper().replace("-", "_")
        default = f.default if defaults else None
        help_text = f"{opt.help} (default {default})" if defaults else opt.help
        kw: dict = dict(dest=f.name, default=default, help=help_text, metavar=metavar)
        if kind is bool:
            kw.update(action=argparse.BooleanOptionalAction)
            kw.pop("metavar")
        else:
            kw.update(type=flag_type(opt.parse) if opt.parse else kind, choices=opt.choices)
            if opt.choices:
                kw.pop("metavar")
            if opt.const is not None:
                kw.update(nargs="?", const=opt.const)
        p.add_argument(opt.flag, **kw)


def given(args: argparse.Namespace, names: tuple[str, ...]) -> dict:
    """The options among ``names`` that the user gave (a LibraryDefault was not given)."""
    return {k: getattr(args, k) for k in names if not isinstance(getattr(args, k), LibraryDefault)}


def flag_type(parse: Callable[[str], object]) -> Callable[[str], object]:
    """A parser of the library as an argparse type: its message, not "invalid value"."""

    def parsed(text: str) -> object:
        try:
            return parse(text)
        except ConfigError as err:  # argparse names the flag itself
            raise argparse.ArgumentTypeError(err.text if err.option else str(err)) from None

    return parsed


def as_flags(err: ConvnetsError) -> str:
    """The error with an option named by its flag (``--wd``, not ``weight_decay``; a library
    argument such as ``batch_size`` as ``--batch-size``)."""
    if isinstance(err, ConfigError) and err.option:
        from ..engine.config import train_options

        flags = {f.name: opt.flag for f, opt, _ in train_options()}
        return f"{flags.get(err.option, '--' + err.option.replace('_', '-'))} {err.text}"
    return str(err)


def config_help(name: str) -> str:
    """The help text of TrainConfig's field ``name``, for flags other commands share with it."""
    from dataclasses import fields

    from ..engine.config import TrainConfig

    return next(f for f in fields(TrainConfig) if f.name == name).metadata["option"].help


def note(text: str) -> None:
    print(text, file=sys.stderr)


def error_line(err) -> None:
    print(f"convnets: error: {err}", file=sys.stderr)
