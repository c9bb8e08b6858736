"""``cifar10:DIR`` and ``cifar100:DIR``: the official "python version" directories.

Their batches are pickles, read by :func:`~convnets.data.safe_pickle.restricted_pickle_load`
(which runs no code); every field is checked, so a damaged or foreign file is one line
that names it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from ...core import first_line
from ...errors import DataError
from ...models.conventions import CIFAR10_MEAN, CIFAR10_STD
from ..arrays import ArrayDataset
from ..folders import require_folder
from ..safe_pickle import restricted_pickle_load
from . import Opened, Request, register_source

# Per-channel statistics of the training images, values in [0, 1] (population std over
# all pixels of the 50,000 training images); CIFAR-10's are also the CIFAR models'
# registered normalisation, so they live with the model conventions.
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)


@dataclass(frozen=True)
class _Layout:
    """Where one of the two data sets keeps what."""

    prefix: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta: str
    names_key: bytes
    labels_key: bytes
    num_classes: int
    expected: str
    mean: tuple[float, ...]
    std: tuple[float, ...]


CIFAR10 = _Layout("cifar10", tuple(f"data_batch_{k}" for k in range(1, 6)), ("test_batch",),
                  "batches.meta", b"label_names", b"labels", 10,
                  "data_batch_1..5, test_batch and batches.meta (the CIFAR-10 python version)",
                  CIFAR10_MEAN, CIFAR10_STD)
CIFAR100 = _Layout("cifar100", ("train",), ("test",), "meta", b"fine_label_names", b"fine_labels",
                   100, "train, test and meta (the CIFAR-100 python version)",
                   CIFAR100_MEAN, CIFAR100_STD)


def _labels(values: object, n: int, n_classes: int) -> np.ndarray | None:
    """The labels as int64, if ``values`` holds ``n`` integers in 0..n_classes-1."""
    if isinstance(values, np.ndarray):
        ok = values.ndim == 1 and (values.dtype.kind in "iu")
    else:
        ok = isinstance(values, list) and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values)
    if not ok or len(values) != n:
        return None
    lab = np.asarray(values, dtype=np.int64)
    return lab if not len(lab) or (lab.min() >= 0 and lab.max() < n_classes) else None


def open_cifar(layout: _Layout, request: Request) -> Opened:
    root = os.path.expanduser(request.arg)
    files = list(layout.train_files if request.split == "train" else layout.test_files)
    meta, n_classes, expected = layout.meta, layout.num_classes, layout.expected
    where = f"{layout.prefix}:{root}"
    require_folder(root, where, f"expected {expected}")
    missing = [f for f in files + [meta] if not os.path.isfile(os.path.join(root, f))]
    if missing:
        raise DataError(f"{where}: expected {expected}; missing {', '.join(missing)}")

    def read(name: str) -> dict:
        try:
            obj = restricted_pickle_load(os.path.join(root, name))
        except Exception as err:
            # The unpickler's failures on damaged data are unspecified (UnpicklingError,
            # EOFError, ValueError, IndexError, ...): each means a file that is not CIFAR's.
            reason = first_line(err)
            raise DataError(f"{where}: {name} is not a CIFAR python-version pickle "
                            f"({reason})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{where}: {name} is not a CIFAR python-version pickle (no dict)")
        return obj

    names = read(meta).get(layout.names_key)
    if (not isinstance(names, list) or len(names) != n_classes
            or not all(isinstance(n, (bytes, str)) for n in names)):
        raise DataError(f"{where}: {meta} has no list of {n_classes} {layout.names_key.decode()}")
    classes = [n.decode("utf-8", "backslashreplace") if isinstance(n, bytes) else n for n in names]
    images, labels = [], []
    for name in files:
        batch = read(name)
        data = batch.get(b"data")
        if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
                or data.shape[1] != 3072):
            what = (f"a {data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray)
                    else f"a {type(data).__name__}")
            raise DataError(f"{where}: {name} must hold b'data' (uint8, N x 3072: N 32x32 RGB "
                            f"images); it holds {what}")
        lab = _labels(batch.get(layout.labels_key), len(data), n_classes)
        if lab is None:
            raise DataError(f"{where}: {name} must hold {layout.labels_key!r} as {len(data)} "
                            f"integer labels in 0..{n_classes - 1}, one per image")
        images.append(data.reshape(-1, 3, 32, 32))  # rows hold the R, G, B planes in turn
        labels.append(lab)
    dataset = ArrayDataset(torch.from_numpy(np.concatenate(images)),
                           np.concatenate(labels).tolist(), classes)
    return Opened(dataset, "cifar", layout.mean, layout.std)


for _layout in (CIFAR10, CIFAR100):
    register_source(_layout.prefix, lambda request, layout=_layout: open_cifar(layout, request))
