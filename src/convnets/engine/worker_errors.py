"""User errors raised in DataLoader worker processes, given back as the one line they were.

A worker's exception reaches the main process re-created by PyTorch as the same type with
a new message: "Caught BadImageError in DataLoader worker process 0." followed by the
worker's whole traceback. For a :class:`~convnets.errors.ConvnetsError` (a bad image
file, a data folder that turned unreadable) that traceback is noise: the command line
prints such errors as one line, as it does with ``--workers 0``. Every other exception
keeps the worker's traceback, which is what a bug needs.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

from ..errors import ConvnetsError

__all__ = ["unwrap_worker_errors"]


@contextlib.contextmanager
def unwrap_worker_errors() -> Iterator[None]:
    """Re-raise a ConvnetsError from a DataLoader worker with its original message."""
    try:
        yield
    except ConvnetsError as err:
        message = _original_message(err)
        if message is None:
            raise
        raise type(err)(message) from None


def _original_message(err: ConvnetsError) -> str | None:
    kind = type(err)
    text = str(err)
    if not text.startswith(f"Caught {kind.__name__} in DataLoader worker process"):
        return None
    # The traceback ends with the exception's own line, "module.Class: message".
    marker = f"{kind.__module__}.{kind.__qualname__}: "
    at = text.rfind(marker)
    return text[at + len(marker):].strip() if at >= 0 else None
