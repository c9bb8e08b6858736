"""A pickle loader that cannot run code: for the CIFAR python-version batches only.

Pickle is the official format of those files (written by Python 2, hence
``encoding='bytes'``), and unpickling an arbitrary file can run any code it names. The
loader here accepts only plain containers, bytes, numbers and numpy arrays, and no array
larger than the file, so a crafted or damaged file is refused instead of obeyed.
"""
from __future__ import annotations

import io
import math
import pickle

import numpy as np

__all__ = ["restricted_pickle_load"]


# Only what the official CIFAR files (pickled numpy arrays, Python 2 era) and numpy's own
# array pickles need: array reconstruction and dtypes. Everything else is refused, so a
# crafted file cannot run code.
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
}


class _ArrayType:
    """Stands for numpy.ndarray in a pickle: numpy's pickles name the type only as the
    first argument of ``_reconstruct``; calling it would allocate any declared shape."""

    def __new__(cls, *args, **kwargs):
        raise pickle.UnpicklingError("refusing to call numpy.ndarray")


class _RestrictedUnpickler(pickle.Unpickler):
    """Reads from memory (the whole file), so no declared length can make it allocate
    more than the file; arrays may declare at most the file's size in bytes."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data), encoding="bytes")
        self._limit = len(data)

    def find_class(self, module: str, name: str):
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if name == "ndarray":
            return _ArrayType
        if name == "_reconstruct":
            return self._reconstruct
        if module.startswith("numpy.core.") and int(np.__version__.split(".")[0]) >= 2:
            module = "numpy._core." + module[len("numpy.core."):]  # avoid the deprecated alias
        return super().find_class(module, name)

    def _reconstruct(self, subtype, shape, dtype) -> np.ndarray:
        # numpy pickles an array as _reconstruct(ndarray, (0,), b"b") plus its state; a
        # larger shape here allocates memory that no data in the file fills.
        if subtype is not _ArrayType:
            raise pickle.UnpicklingError("_reconstruct of a type other than numpy.ndarray")
        size = math.prod(int(n) for n in shape) * np.dtype(dtype).itemsize
        if size > self._limit:
            raise pickle.UnpicklingError(f"it declares an array of {size:,} bytes, more than "
                                         f"the file's {self._limit:,}")
        return np.ndarray(tuple(shape), dtype)


def restricted_pickle_load(path: str) -> object:
    """Load a pickle that may contain only plain containers, bytes, numbers and numpy
    arrays, none larger than the file. Used for the CIFAR python-version files only:
    pickle is their official format (written by Python 2, hence ``encoding='bytes'``)."""
    with open(path, "rb") as f:
        data = f.read()
    return _RestrictedUnpickler(data).load()
