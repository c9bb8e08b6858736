"""Weights files: read a state dict from any file a user may hand in, check it, load it.

One path for every format. ``read_state_dict`` recognises the format by the file's
first bytes, not its name: safetensors, PyTorch's zip archive (``torch.save`` since 1.6)
or its older pickle format. Each is read without executing anything from the file
(safetensors holds no code; ``torch.load`` runs with ``weights_only=True``). What was
read then goes through the same checks whatever its format: common wrappers
(``{"state_dict": ...}``, ``{"model": ...}``) are removed, ``module.`` prefixes (saved
from a DistributedDataParallel model) are stripped, and every entry must be a tensor
named by a string.

``load_weights`` then checks the state dict against the model before anything is
copied: every tensor present, of the model's shape, of the model's kind of dtype (a
floating tensor from floating values: a float16 or bfloat16 copy is cast, integers or
booleans are refused; integer buffers such as batch norm's ``num_batches_tracked``
from integers) and finite. NaN or infinite weights are refused, naming the tensor: a
network holding one computes NaN for every input (a diverged run, or a corrupt file),
and nothing a user does with it afterwards would say why.

Every refusal is a :class:`WeightsError`: one line that names the file and says what is
wrong with it (empty, not a weights file, truncated, holds code, a tensor that does not
fit, ...). A path that does not exist is a :class:`WeightsNotFoundError`, which is also
the :class:`~convnets.errors.NotFoundError` (a ``FileNotFoundError``) that a missing run
or image raises.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import zipfile

import torch
from torch import nn

from ..core import first_line
from ..errors import NotFoundError, WeightsError

__all__ = ["WeightsNotFoundError", "read_state_dict", "load_weights", "check_state_dict",
           "check_fits"]

# A safetensors file starts with the 8-byte little-endian length of its JSON header;
# the safetensors library refuses headers above 100 MB, and so do we, before reading one.
_SAFETENSORS_MAX_HEADER = 100_000_000
_ZIP_MAGIC = b"PK\x03\x04"
# torch.save's pre-1.6 format starts with a pickled magic number (protocol 2 or later).
_LEGACY_MAGIC = b"\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"
_WRAPPERS = ("state_dict", "model", "model_state")
_DDP_PREFIX = "module."


class WeightsNotFoundError(WeightsError, NotFoundError):
    """A weights path that does not exist: caught by ``except WeightsError`` like every
    other refusal, and by ``except FileNotFoundError`` like every other missing path."""


# --- reading ---------------------------------------------------------------------------

def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, by name, without executing code from the file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise WeightsNotFoundError(f"weights file not found: {path}")
    if not os.path.isfile(path):
        raise WeightsError(f"{path} is not a file")
    size = os.path.getsize(path)
    if size == 0:
        raise WeightsError(f"{path} is empty (0 bytes): not a weights file")
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as err:
        raise WeightsError(f"cannot read weights from {path}: {err.strerror or err}") from None
    if _is_safetensors(head):
        state = _read_safetensors(path, size)
    elif head.startswith(_ZIP_MAGIC):
        _check_zip(path, size)
        state = _torch_load(path)
    elif head[:1] == b"\x80" and head[2:].startswith(_LEGACY_MAGIC):
        state = _torch_load(path)
    else:
        raise WeightsError(f"{path} is not a weights file: neither safetensors nor a PyTorch "
                           f"file (torch.save) (it starts with {head[:8]!r})")
    return check_state_dict(state, path)


def _is_safetensors(head: bytes) -> bool:
    return len(head) > 8 and head[8:9] == b"{"


def _read_safetensors(path: str, size: int) -> object:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if n > _SAFETENSORS_MAX_HEADER:
            raise WeightsError(f"{path} is not a valid safetensors file: its header declares "
                               f"{n:,} bytes (at most {_SAFETENSORS_MAX_HEADER:,})")
        if 8 + n > size:
            raise WeightsError(f"{path} is truncated: its safetensors header declares {n:,} bytes "
                               f"but the file holds {size:,} bytes in all")
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        raise WeightsError(f"{path} is not a valid safetensors file: its header is not JSON") from None
    end = _declared_end(header)
    if end is not None and 8 + n + end > size:
        raise WeightsError(f"{path} is truncated: its header declares {end:,} bytes of tensor "
                           f"data but the file holds {size - 8 - n:,}")
    try:
        return load_file(path)
    except SafetensorError as err:  # the library checks dtypes, shapes and offsets
        raise WeightsError(f"{path} is not a valid safetensors file: "
                           f"{first_line(err)}") from None


def _declared_end(header: object) -> int | None:
    """The largest data offset a well-formed header declares (None if it is malformed:
    the safetensors library then says what is wrong)."""
    if not isinstance(header, dict):
        return None
    ends = [entry.get("data_offsets") for key, entry in header.items()
            if key != "__metadata__" and isinstance(entry, dict)]
    if not ends or not all(isinstance(e, list) and len(e) == 2 and all(isinstance(v, int) for v in e)
                           for e in ends):
        return None
    return max(e[1] for e in ends)


def _check_zip(path: str, size: int) -> None:
    """PyTorch's archive is a zip whose records are stored uncompressed, so its tensors
    cannot hold more bytes than the file: a larger declared size is a compressed or
    forged archive, refused before PyTorch allocates it (a 200 KB file can otherwise
    declare and inflate hundreds of megabytes)."""
    try:
        with zipfile.ZipFile(path) as z:
            declared = sum(info.file_size for info in z.infolist())
    except (zipfile.BadZipFile, ValueError, EOFError, OSError):  # e.g. a garbled entry name
        raise WeightsError(f"{path} is truncated or corrupt: it starts as a PyTorch zip archive "
                           "but its directory is missing or unreadable") from None
    if declared > size:
        raise WeightsError(f"{path} is not a PyTorch weights file: its zip records declare "
                           f"{declared:,} bytes, more than the file's {size:,} (PyTorch never "
                           "compresses them)")


def _torch_load(path: str) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL (\S+)", str(err))
        if found or "reduce for unrecognized function" in str(err):
            what = f" ({found.group(1)})" if found else ""
            raise WeightsError(f"{path} holds Python objects other than tensors{what}, which could "
                               "run code when loaded: refused for safety; save the state dict "
                               "alone (model.state_dict()) or as safetensors") from None
        raise WeightsError(f"{path} is corrupt: its pickled data cannot be read "
                           f"({first_line(err)})") from None
    except Exception as err:
        # PyTorch's reader fails on malformed archives and pickles in unspecified ways
        # (RuntimeError, EOFError, IndexError, AssertionError, struct.error, ...); at
        # this point every one of them means a damaged file.
        raise WeightsError(f"{path} is truncated or corrupt: PyTorch cannot read it "
                           f"({type(err).__name__}: {first_line(err)})") from None


# --- one check for every format --------------------------------------------------------

def check_state_dict(state: object, source: str) -> dict[str, torch.Tensor]:
    """``state`` as a flat ``{name: tensor}`` dict: wrappers removed, ``module.``
    prefixes stripped, every entry checked. ``source`` names it in errors."""
    for _ in range(3):  # e.g. {"model": {"state_dict": {...}}}
        if not isinstance(state, dict) or _all_tensors(state):
            break
        inner = next((state[k] for k in _WRAPPERS if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, dict):
        raise WeightsError(f"{source} holds a {type(state).__name__}, not a state dict "
                           "(a dict of tensors by name)")
    if not state:
        raise WeightsError(f"{source} holds no tensors")
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise WeightsError(f"{source}: the key {key!r} ({type(key).__name__}) is not a "
                               "tensor name; a state dict is keyed by strings")
        if not isinstance(value, torch.Tensor):
            what = "a nested dict" if isinstance(value, dict) else f"a {type(value).__name__}"
            raise WeightsError(f"{source}: entry {key!r} holds {what}, not a tensor")
        if value.layout != torch.strided or value.is_meta:
            raise WeightsError(f"{source}: tensor {key!r} is not a dense tensor with data "
                               f"({'meta' if value.is_meta else value.layout})")
        name = key.removeprefix(_DDP_PREFIX)
        if name in out:
            raise WeightsError(f"{source} holds the tensor {name!r} twice (with and without "
                               f"the {_DDP_PREFIX!r} prefix)")
        out[name] = value
    return out


def _all_tensors(state: dict) -> bool:
    return bool(state) and all(isinstance(v, torch.Tensor) for v in state.values())


def _kind(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return "boolean"
    if dtype.is_floating_point:
        return "floating-point"
    if dtype.is_complex:
        return "complex"
    return "integer"


def _non_finite(t: torch.Tensor) -> int:
    if not t.dtype.is_floating_point:
        return 0
    finite = torch.isfinite(t.float() if t.dtype.itemsize == 1 else t)  # float8: no kernel
    return 0 if bool(finite.all()) else int((~finite).sum())


def check_fits(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise :class:`WeightsError` naming the first tensor of ``state`` that does not fit
    ``model``: missing, unexpected, mis-shaped, of another kind of number (a float copy
    of another width is fine), or holding NaN or infinite values."""
    own = model.state_dict()
    for key, mine in own.items():
        theirs = state.get(key)
        if theirs is None:
            raise WeightsError(f"the weights in {source} lack tensor {key!r} "
                               f"(shape {tuple(mine.shape)})")
        if tuple(theirs.shape) != tuple(mine.shape):
            raise WeightsError(f"tensor {key!r} has shape {tuple(theirs.shape)} in {source} "
                               f"but {tuple(mine.shape)} in the model")
        if _kind(theirs.dtype) != _kind(mine.dtype):
            raise WeightsError(f"tensor {key!r} holds {_kind(theirs.dtype)} values ({theirs.dtype}) "
                               f"in {source} but the model's is {_kind(mine.dtype)} "
                               f"({mine.dtype}): refusing to convert")
        bad = _non_finite(theirs)
        if bad:
            raise WeightsError(f"tensor {key!r} in {source} holds {bad} NaN or infinite "
                               f"value{'s' if bad != 1 else ''} of {theirs.numel()}: the weights "
                               "come from a diverged run or a damaged file")
    extra = [k for k in state if k not in own]
    if extra:
        raise WeightsError(f"{source} holds tensor {extra[0]!r} that the model does not have")


def load_weights(model: nn.Module, weights: str | os.PathLike | dict, *,
                 fit_head: bool = False) -> nn.Module:
    """Load a weights file or state dict into ``model``, mapping foreign key names where
    the model knows how (``remap_state_dict(state) -> state``). Every tensor must fit
    (:func:`check_fits`), or nothing is loaded. With ``fit_head``, a classifier trained
    on another number of classes first replaces the model's (``reset_classifier``), so
    any weights of the architecture load."""
    if isinstance(weights, dict):
        source, state = "the state dict", check_state_dict(weights, "the state dict")
    else:
        source, state = os.fspath(weights), read_state_dict(weights)
    remap = getattr(model, "remap_state_dict", None)
    if callable(remap):
        state = remap(dict(state))
    head_classes = getattr(model, "head_classes", None)
    if fit_head and callable(head_classes):
        classes = head_classes(state)
        if classes and classes != model.num_classes:
            model.reset_classifier(classes)
    check_fits(model, state, source)
    model.load_state_dict(state, strict=True)
    return model
