"""What every part of convnets shares: the device rule, mixed precision, input sizes,
atomic file writes, reading a JSON file and the one-line text of an error.

It imports only torch and :mod:`convnets.errors`, so models, data, the engine, inference,
the server and the benchmark can all depend on it without depending on each other.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import IO, Any, Callable, Iterator, Sequence

import torch

from .errors import ConfigError, ConvnetsError

__all__ = ["AMP_DTYPES", "amp_dtype", "autocast", "local_device", "parse_input_size",
           "format_input_size", "atomic_write", "replacing", "read_json", "first_line"]


# --- devices ---------------------------------------------------------------------------

def local_device(requested: str = "auto", local_rank: int = 0) -> torch.device:
    """The device a process computes on. ``auto`` is this process's GPU (``local_rank``,
    torchrun's LOCAL_RANK) when there is one, else the CPU; ``cuda`` without an index
    likewise takes the process's GPU."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise ConfigError.of("device", f"{requested!r} is not auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError.of("device", f"{requested} asked for, but no CUDA GPU is available")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    elif device.type != "cpu":
        raise ConfigError.of("device", f"{requested!r} is not auto, cpu, cuda or cuda:N")
    return device


# --- mixed precision -------------------------------------------------------------------

#: The mixed-precision names every command and function takes, and their dtypes.
AMP_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


def amp_dtype(amp: str | None) -> torch.dtype | None:
    """The dtype of a mixed-precision name (``None``: full precision)."""
    if amp is None:
        return None
    if amp not in AMP_DTYPES:
        raise ConfigError.of("amp", f"must be one of {', '.join(AMP_DTYPES)}, got {amp!r}")
    return AMP_DTYPES[amp]


def autocast(device: torch.device, amp: str | None):
    """The autocast context for ``amp`` on ``device`` (a no-op without ``amp``): the one
    training, evaluation and the benchmark all run under."""
    dtype = amp_dtype(amp)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# --- input sizes -----------------------------------------------------------------------

def parse_input_size(text: str | int | Sequence[int], default_channels: int = 3) -> tuple[int, int, int]:
    """``224`` -> (3, 224, 224); ``"1x28x28"`` -> (1, 28, 28); ``"240x320"`` -> (3, 240, 320);
    a sequence of one to three whole numbers reads the same way."""
    try:
        if isinstance(text, (tuple, list)):
            dims = [int(v) for v in text]
        else:
            dims = [int(v) for v in str(text).lower().replace(",", "x").split("x")]
    except (TypeError, ValueError):
        raise ConfigError.of("input_size", f"{text!r} is not S, HxW or CxHxW (e.g. 224 or "
                             "3x224x224)") from None
    if len(dims) == 1:
        dims = [default_channels, dims[0], dims[0]]
    elif len(dims) == 2:
        dims = [default_channels, *dims]
    if len(dims) != 3 or min(dims) < 1:
        raise ConfigError.of("input_size", f"{text!r} is not S, HxW or CxHxW with positive "
                             "whole numbers")
    return tuple(dims)


def format_input_size(size: Sequence[int]) -> str:
    """(3, 224, 224) -> ``3x224x224``, as the command line takes it back."""
    return "x".join(str(v) for v in size)


# --- atomic files ----------------------------------------------------------------------

def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through ``write(file)`` so that readers see the old or the new file,
    never a partial one: the data goes to a temporary file in the same directory (same
    file system, so the rename is atomic), is flushed to disk, then renamed over ``path``."""
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    # The rename itself is durable only once the directory entry is on disk (POSIX).
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[str]:
    """A temporary path beside ``path`` for a writer that wants a file name (matplotlib's
    ``savefig``); when the block ends without error it replaces ``path`` whole, otherwise
    it is removed and ``path`` is left as it was. The file is created as any file is, so
    it keeps the user's usual permissions (``atomic_write``'s are private to the user)."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    root, ext = os.path.splitext(path)
    tmp = f"{root}.tmp{ext}"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_json(path: str | os.PathLike, *, missing: str, error: type[ConvnetsError]) -> Any:
    """The JSON value the UTF-8 file ``path`` holds. A missing file raises
    ``error(missing)``; one that cannot be read, or is not JSON, ``error`` with the
    reason, in one line."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise error(missing) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise error(f"{os.fspath(path)} is not valid JSON: {err}") from None
    except OSError as err:  # a directory, no permission
        raise error(f"{os.fspath(path)} cannot be read: {err.strerror or first_line(err)}") from None


# --- error text ------------------------------------------------------------------------

def first_line(err: BaseException, *, with_type: bool = False) -> str:
    """The first line of ``err``'s message, for a one-line report (the exception's type
    name when it has no message; ``with_type`` puts the type name in front)."""
    text = str(err).strip()
    if not text:
        return type(err).__name__
    line = text.splitlines()[0]
    return f"{type(err).__name__}: {line}" if with_type else line
