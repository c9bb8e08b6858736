"""The errors a user can cause and fix: a wrong name, option, path, file or input.

Everything convnets raises on purpose derives from :class:`ConvnetsError`; the command
line prints such an error as one line and exits with status 2. Any other exception is a
bug in convnets and keeps its traceback. Each class also derives from the built-in
exception a Python caller would expect (``ValueError``, ``KeyError``,
``FileNotFoundError``), so ``except ValueError`` keeps working around library calls.
"""
from __future__ import annotations

__all__ = ["ConvnetsError", "ConfigError", "DataError", "UnknownModelError", "WeightsError",
           "CheckpointError", "RunDirError", "NotFoundError"]


class ConvnetsError(Exception):
    """A problem with the user's input, reported by the command line as one line."""


class ConfigError(ConvnetsError, ValueError):
    """An option or configuration value that is out of range or of the wrong kind.

    ``option`` names the configuration field at fault, when there is one, and ``text``
    says what is wrong with it; the message is ``"{option} {text}"``. The command line
    shows the field under its flag's name instead (``--wd`` for ``weight_decay``).
    """

    def __init__(self, message: str, *, option: str | None = None, text: str | None = None) -> None:
        super().__init__(message)
        self.option, self.text = option, text

    @classmethod
    def of(cls, option: str, text: str) -> "ConfigError":
        return cls(f"{option} {text}", option=option, text=text)


class DataError(ConvnetsError, ValueError):
    """A dataset spec, folder or data file that cannot be used."""


class UnknownModelError(ConvnetsError, KeyError):
    """A model name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsError(ConvnetsError, ValueError):
    """A weights file that cannot be read or does not fit the model."""


class CheckpointError(ConvnetsError, ValueError):
    """A checkpoint that cannot be read or restored."""


class RunDirError(ConvnetsError, ValueError):
    """A run directory that is missing, incomplete or malformed."""


class NotFoundError(ConvnetsError, FileNotFoundError):
    """A path the user named that does not exist."""
