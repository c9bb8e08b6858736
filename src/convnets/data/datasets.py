"""Datasets named by a short spec: built-in digits, synthetic, CIFAR, ImageNet, image folders.

``open_dataset(spec, split, ...)`` returns a ``torch.utils.data.Dataset`` of
``(image, label)`` pairs, with ``classes``, ``num_classes``, ``targets``, the bad-file
counters ``bad_files()`` / ``reset_bad_files()`` (always 0 except for image folders),
``raw_image(i)`` (sample i before any transform), and what a trained network needs to
see new images as it saw these: ``preset`` (the transform preset) and ``mean``/``std``
(the normalisation, one value per channel of the data).

Spec forms (``SPEC_HELP``):

- ``None`` or ``"digits"``: scikit-learn's handwritten digits (1,797 real 8x8 grey
  images, 10 classes), split by a stratified shuffle with seed 0 into 1,437 training and
  360 test images; upsampled bilinearly to the model's input, values scaled to [0, 1]
  and normalised with the training split's mean and std (of all ten classes).
  ``"digits:CLASSES"`` keeps some of the classes (``digits:0-4``, ``digits:5,7,9``),
  relabelled 0..k-1 and keeping their names (see :mod:`convnets.data.subsets`).
- ``"synthetic[:N[:C]]"``: N (default 1024) random N(0, 1) images of the model's input
  size, C (default 10) classes; sample i is the same on every call (seeded by i and the
  split). No transform is applied: for measuring throughput.
- ``"cifar10:DIR"``, ``"cifar100:DIR"``: the official "python version" directories.
- ``"imagenet:DIR"``: ``DIR/train/<wnid>/*.JPEG`` and ``DIR/val/<wnid>/*.JPEG`` (the
  validation images sorted into class folders). Classes are the sorted wnids of train/
  (attribute ``wnids``); with all 1,000 ILSVRC-2012 classes, ``classes`` holds the
  human-readable names of ``convnets.imagenet_classes()``, which follow that order.
- ``"folder:DIR"`` or an existing directory: ``DIR/<class>/<images>``; where ``DIR`` has
  ``train/`` and ``val/`` (or ``test/``) subfolders, the split's subfolder is used and the
  class list comes from ``train/``; otherwise every tenth file of each class (sorted by
  path) is held out as the test split and the rest is the training split.

Nothing is downloaded; a missing or malformed directory or file raises
:class:`~convnets.errors.DataError` (a ``ValueError``) with one line that says what was
expected. Splits are ``"train"`` and ``"val"``, with ``"test"``
a synonym of ``"val"`` (for folders: whichever of val/ and test/ exists, val/ first).
"""
from __future__ import annotations

import ctypes
import io
import math
import multiprocessing
import os
import pickle
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..core import first_line
from ..errors import DataError
from .images import REASONS, BadImageError, display_path, get_max_pixels, load_rgb, load_rgb_tensor
from .subsets import select_classes
from .transforms import IMAGENET_MEAN, IMAGENET_STD, build_transform

__all__ = [
    "SPEC_HELP", "BadImageError", "open_dataset", "load_rgb", "restricted_pickle_load",
    "ArrayDataset", "SyntheticDataset", "ImageFolderDataset",
    "CIFAR10_MEAN", "CIFAR10_STD", "CIFAR100_MEAN", "CIFAR100_STD",
    "DIGITS_SPLIT_SEED", "DIGITS_TEST_SIZE",
]

SPEC_HELP = ("digits (built-in, default), digits:CLASSES (some of the digits, e.g. digits:0-4 "
             "or digits:5,7,9), synthetic[:N[:C]], cifar10:DIR, cifar100:DIR, imagenet:DIR, "
             "folder:DIR or an image-folder path")

# Per-channel statistics of the training images, values in [0, 1] (population std over
# all pixels of the 50,000 training images).
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)

DIGITS_SPLIT_SEED = 0
DIGITS_TEST_SIZE = 360  # of 1,797: 1,437 train / 360 test, stratified by class

IMG_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".ppm", ".pgm", ".pbm", ".bmp", ".gif",
                  ".tif", ".tiff", ".webp")

_VAL_NAMES = ("val", "test")


# --- the common interface ----------------------------------------------------------------

class _Labelled(Dataset):
    """What the engine relies on: classes, num_classes, targets, bad-file counters; and
    for reading new images as these are read: the transform ``preset`` and the
    normalisation ``mean``/``std`` (None where the data comes with its own transform)."""

    classes: list[str]
    targets: list[int]
    preset: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def bad_files(self) -> int:
        """How many unreadable files were skipped since the last reset."""
        return 0

    def reset_bad_files(self) -> None:
        """Start counting bad files afresh (e.g. at each epoch)."""


class ArrayDataset(_Labelled):
    """In-memory images ``(N, C, H, W)`` (uint8 or float in [0, 1]) with integer labels."""

    def __init__(self, images: torch.Tensor, labels: Sequence[int], classes: list[str],
                 transform: Callable | None) -> None:
        if len(images) != len(labels):
            raise DataError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.targets, self.classes = images, [int(t) for t in labels], classes
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = self.images[i]
        return (self.transform(img) if self.transform else img), self.targets[i]

    def raw_image(self, i: int) -> torch.Tensor:
        return self.images[i]


class SyntheticDataset(_Labelled):
    """Deterministic random images for benchmarking: sample i is drawn from a generator
    seeded by (split seed, i), so it costs no memory and is the same in every worker."""

    def __init__(self, n: int, num_classes: int, input_size: tuple[int, int, int], seed: int) -> None:
        self.n, self.input_size, self.seed = n, tuple(input_size), seed
        self.classes = [str(k) for k in range(num_classes)]
        self.targets = [self._label(i) for i in range(n)]

    def _label(self, i: int) -> int:
        return (i * 7919 + self.seed * 104729) % len(self.classes)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if not 0 <= i < self.n:
            raise IndexError(i)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        return torch.randn(self.input_size, generator=g), self.targets[i]

    def raw_image(self, i: int) -> torch.Tensor:
        return self[i][0]


# --- image files -------------------------------------------------------------------------

class ImageFolderDataset(_Labelled):
    """Image files with labels, decoded on access by :func:`~convnets.data.images.load_rgb`.

    A file that cannot be used (not an image, truncated, too large, ...) is skipped: the
    next readable file in the list (wrapping around) is returned in its place, so batch
    sizes stay constant, which matters for DistributedDataParallel. Each bad file is
    flagged, with the index of its reason in ``images.REASONS``, in a byte array in
    shared memory, so flags set in DataLoader worker processes (fork or spawn) are seen
    by the main process: ``bad_files()`` counts the distinct bad files met since the
    last ``reset_bad_files()``, ``bad_file_names()`` lists them, ``bad_file_report()``
    gives printable ``(path, reason)`` pairs. With ``fail_fast=True`` the first bad file
    raises ``BadImageError``. ``max_pixels`` is the decoding limit (default: the one in
    force when the dataset is made). (The shared array can be pickled only to start a
    process, as DataLoader does; the dataset cannot be deep-copied.)
    """

    def __init__(self, samples: list[tuple[str, int]], classes: list[str],
                 transform: Callable | None, *, fail_fast: bool = False, root: str = "",
                 max_pixels: int | None = None) -> None:
        self.samples, self.classes, self.transform = samples, classes, transform
        self.targets = [label for _, label in samples]
        self.fail_fast, self.root = fail_fast, root
        self.max_pixels = get_max_pixels() if max_pixels is None else max_pixels
        self._bad = multiprocessing.Array(ctypes.c_uint8, max(1, len(samples)), lock=False)

    def __len__(self) -> int:
        return len(self.samples)

    def _flags(self) -> np.ndarray:
        return np.frombuffer(self._bad, dtype=np.uint8)[: len(self.samples)]

    def bad_files(self) -> int:
        return int(np.count_nonzero(self._flags()))

    def bad_file_names(self) -> list[str]:
        return [self.samples[i][0] for i in np.flatnonzero(self._flags())]

    def bad_file_report(self) -> list[tuple[str, str]]:
        flags = self._flags()
        return [(display_path(self.samples[i][0]), REASONS[flags[i] - 1])
                for i in np.flatnonzero(flags)]

    def reset_bad_files(self) -> None:
        self._flags()[:] = 0

    def raw_image(self, i: int) -> Image.Image:
        return load_rgb(self.samples[i][0])

    def restricted_to(self, keep: Sequence[int]) -> "ImageFolderDataset":
        """The files of the classes ``keep`` (indices) only, labelled 0..k-1, so that an
        unreadable file is replaced by another file of these classes."""
        relabel = {old: new for new, old in enumerate(keep)}
        subset = ImageFolderDataset([(path, relabel[label]) for path, label in self.samples
                                     if label in relabel], [self.classes[k] for k in keep],
                                    self.transform, fail_fast=self.fail_fast, root=self.root)
        subset.preset, subset.mean, subset.std = self.preset, self.mean, self.std
        return subset

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        n = len(self.samples)
        first: BadImageError | None = None
        # Our transforms start from a uint8 tensor, which plain JPEGs decode straight into;
        # any other transform gets the PIL image.
        load = load_rgb_tensor if getattr(self.transform, "takes_uint8_tensors", False) else load_rgb
        for k in range(n):
            j = (i + k) % n
            if self._bad[j]:
                continue
            path, label = self.samples[j]
            try:
                img = load(path, max_pixels=self.max_pixels)
            except BadImageError as err:
                if self.fail_fast:
                    raise
                self._bad[j] = 1 + (REASONS.index(err.reason) if err.reason in REASONS else 0)
                first = first or err
                continue
            return (self.transform(img) if self.transform else img), label
        example = f" (e.g. {first})" if first else ""
        raise BadImageError(f"{display_path(self.root)}: none of the {n} image files is "
                            f"readable{example}")


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMG_EXTENSIONS)


def _entries(directory: str) -> list[os.DirEntry]:
    try:
        with os.scandir(directory) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as err:
        raise DataError(f"cannot list {display_path(directory)}: "
                        f"{err.strerror or err}") from None


def _class_dirs(root: str) -> list[str]:
    return [e.name for e in _entries(root) if e.is_dir() and not e.name.startswith(".")]


def _within(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def _image_files(top: str, roots: tuple[str, str], seen: set[str]) -> list[str]:
    """Regular image files under ``top``: its own files (sorted), then its subfolders'.

    Special files (named pipes, sockets, devices) are never listed: reading one can block
    forever. ``roots`` are the real paths of the data root and of the class folder being
    walked. A link to a folder is followed only where it leads inside one of them and not
    to the class folder or above it, and each real folder is walked once: a link to
    ``.`` or ``..`` adds nothing, and a link out of the data set adds no foreign files. A
    link to a file is followed wherever it leads: a folder of links to the files of a
    larger data set is a common way to make a subset.
    """
    seen.add(os.path.realpath(top))
    entries = _entries(top)
    files = [e.path for e in entries if _is_image_name(e.name) and e.is_file()]
    for e in entries:
        if e.name.startswith(".") or not e.is_dir():
            continue
        real = os.path.realpath(e.path)
        if real in seen:
            continue
        if e.is_symlink() and (not _within(real, roots) or _within(roots[1], (real,))):
            continue
        files += _image_files(e.path, roots, seen)
    return files


def _scan(root: str, classes: list[str], what: str, data_root: str) -> list[tuple[str, int]]:
    """(path, label) for every image file under root/<class>/ (recursively, sorted)."""
    index = {c: k for k, c in enumerate(classes)}
    present = _class_dirs(root)
    unknown = [c for c in present if c not in index]
    if unknown:
        raise DataError(f"{what}: class folder {display_path(os.path.join(root, unknown[0]))} "
                        f"is not among the {len(classes)} training classes")
    samples = []
    for c in present:
        top = os.path.join(root, c)
        roots = (os.path.realpath(data_root), os.path.realpath(top))
        samples += [(path, index[c]) for path in _image_files(top, roots, set())]
    return samples


# --- spec handlers ----------------------------------------------------------------------

def _split_name(split: str) -> str:
    if split not in ("train", "val", "test"):
        raise DataError(f"unknown split {split!r}: expected train, val or test")
    return "train" if split == "train" else "val"


def _digits(split: str, input_size, transform_for):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    images = torch.from_numpy(data.images.astype(np.float32) / 16.0).unsqueeze(1)  # [0, 1]
    index = np.arange(len(images))
    train_idx, test_idx = train_test_split(index, test_size=DIGITS_TEST_SIZE,
                                           random_state=DIGITS_SPLIT_SEED, stratify=data.target)
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    mean, std = _digits_stats(images[train_idx], input_size[1:])
    idx = train_idx if split == "train" else test_idx
    return ArrayDataset(images[idx], data.target[idx].tolist(), [str(k) for k in range(10)],
                        transform_for("digits", [mean], [std]))


def _digits_stats(images: torch.Tensor, size: tuple[int, int]) -> tuple[float, float]:
    """Mean and std of the training images at the model's resolution (the statistics
    the network sees), accumulated in chunks to bound memory at large sizes."""
    total = total_sq = 0.0
    count = 0
    for chunk in images.split(128):
        x = torch.nn.functional.interpolate(chunk.double(), size=tuple(size), mode="bilinear",
                                            align_corners=False)
        total += x.sum().item()
        total_sq += x.square().sum().item()
        count += x.numel()
    mean = total / count
    return mean, (total_sq / count - mean * mean) ** 0.5


def _synthetic(arg: str, split: str, input_size) -> SyntheticDataset:
    parts = arg.split(":") if arg else []
    try:
        n = int(parts[0]) if parts else 1024
        c = int(parts[1]) if len(parts) > 1 else 10
        if len(parts) > 2 or n < 1 or c < 1:
            raise ValueError
    except ValueError:
        raise DataError(f"synthetic:{arg}: expected synthetic[:N[:C]] with N samples and "
                         "C classes, positive integers") from None
    return SyntheticDataset(n, c, input_size, seed=0 if split == "train" else 1)


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


def _cifar(kind: str, root: str, split: str, transform_for):
    if kind == "cifar10":
        files = [f"data_batch_{k}" for k in range(1, 6)] if split == "train" else ["test_batch"]
        meta, names_key, labels_key, n_classes = "batches.meta", b"label_names", b"labels", 10
        expected = "data_batch_1..5, test_batch and batches.meta (the CIFAR-10 python version)"
        mean, std = CIFAR10_MEAN, CIFAR10_STD
    else:
        files = ["train"] if split == "train" else ["test"]
        meta, names_key, labels_key, n_classes = "meta", b"fine_label_names", b"fine_labels", 100
        expected = "train, test and meta (the CIFAR-100 python version)"
        mean, std = CIFAR100_MEAN, CIFAR100_STD
    where = f"{kind}:{root}"
    if not os.path.isdir(root):
        raise DataError(f"{where}: no such directory; expected {expected}")
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

    names = read(meta).get(names_key)
    if (not isinstance(names, list) or len(names) != n_classes
            or not all(isinstance(n, (bytes, str)) for n in names)):
        raise DataError(f"{where}: {meta} has no list of {n_classes} {names_key.decode()}")
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
        lab = _labels(batch.get(labels_key), len(data), n_classes)
        if lab is None:
            raise DataError(f"{where}: {name} must hold {labels_key!r} as {len(data)} integer "
                            f"labels in 0..{n_classes - 1}, one per image")
        images.append(data.reshape(-1, 3, 32, 32))  # rows hold the R, G, B planes in turn
        labels.append(lab)
    return ArrayDataset(torch.from_numpy(np.concatenate(images)), np.concatenate(labels).tolist(),
                        classes, transform_for("cifar", mean, std))


def _imagenet_names(wnids: list[str]) -> list[str]:
    """Human-readable names where the directory holds the 1,000 ILSVRC-2012 classes (whose
    standard order, that of convnets.imagenet_classes(), is the sorted wnids)."""
    if len(wnids) != 1000:
        return wnids
    try:
        from ..models.classes import imagenet_classes
        names = list(imagenet_classes())
    except (ImportError, AttributeError):
        return wnids
    return names if len(names) == 1000 else wnids


def _imagenet(root: str, split: str, transform_for, fail_fast: bool, max_pixels: int | None):
    where = f"imagenet:{root}"
    expected = ("expected train/<wnid>/*.JPEG and val/<wnid>/*.JPEG "
                "(ILSVRC-2012, validation images sorted into class folders)")
    if not os.path.isdir(root):
        raise DataError(f"{where}: no such directory; {expected}")
    sub = os.path.join(root, split)
    if not os.path.isdir(sub):
        raise DataError(f"{where}: no {split}/ folder; {expected}")
    class_root = os.path.join(root, "train") if os.path.isdir(os.path.join(root, "train")) else sub
    wnids = _class_dirs(class_root)
    for d in {class_root, sub}:
        if not _class_dirs(d):
            flat = any(_is_image_name(e.name) for e in _entries(d))
            hint = f"; the images lie directly in {d}, sort them into class folders" if flat else ""
            raise DataError(f"{where}: no class folders in {d}; {expected}{hint}")
    samples = _scan(sub, wnids, where, root)
    if not samples:
        raise DataError(f"{where}: no image files under {sub}; {expected}")
    ds = ImageFolderDataset(samples, _imagenet_names([display_path(w) for w in wnids]),
                            transform_for("imagenet", IMAGENET_MEAN, IMAGENET_STD), fail_fast=fail_fast,
                            root=sub, max_pixels=max_pixels)
    ds.wnids = wnids
    return ds


def _hold_out(samples: list[tuple[str, int]], split: str) -> list[tuple[str, int]]:
    """Every tenth file of each class (in sorted order) is the test split, the rest train:
    the same split on every machine, and never a test image seen in training."""
    rank: dict[int, int] = {}
    kept = []
    for path, label in samples:
        k = rank[label] = rank.get(label, -1) + 1
        if (k % 10 == 9) == (split != "train"):
            kept.append((path, label))
    return kept


def _folder(root: str, split: str, transform_for, fail_fast: bool, max_pixels: int | None):
    where = f"folder:{root}"
    expected = "expected DIR/<class>/<image files>, or DIR/train/<class>/ and DIR/val/<class>/"
    if not os.path.isdir(root):
        raise DataError(f"{where}: no such directory; {expected}")
    train_dir = os.path.join(root, "train")
    val_dirs = [os.path.join(root, v) for v in _VAL_NAMES if os.path.isdir(os.path.join(root, v))]
    if os.path.isdir(train_dir) or val_dirs:
        if split == "train":
            if not os.path.isdir(train_dir):
                raise DataError(f"{where}: no train/ folder beside {os.path.basename(val_dirs[0])}/; {expected}")
            sub = train_dir
        else:
            if not val_dirs:
                raise DataError(f"{where}: no val/ or test/ folder beside train/; {expected}")
            sub = val_dirs[0]
        class_root = train_dir if os.path.isdir(train_dir) else sub
    else:
        sub = class_root = root
    classes = _class_dirs(class_root)
    if not classes:
        raise DataError(f"{where}: no class folders in {class_root}; {expected}")
    samples = _scan(sub, classes, where, root)
    if sub == root:  # one flat folder: hold out a fixed tenth of each class for testing
        samples = _hold_out(samples, split)
    if not samples:
        raise DataError(f"{where}: no image files ({', '.join(IMG_EXTENSIONS[:4])}, ...) "
                        f"{'held out ' if split != 'train' and sub == root else ''}under {sub}; {expected}")
    # Class names are for printing and plotting: folder names that are not UTF-8 (made on
    # another system) keep their bytes as \xNN escapes.
    return ImageFolderDataset(samples, [display_path(c) for c in classes],
                              transform_for("imagenet", IMAGENET_MEAN, IMAGENET_STD), fail_fast=fail_fast,
                              root=sub, max_pixels=max_pixels)


def _check_input_size(input_size) -> tuple[int, int, int]:
    try:
        c, h, w = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise DataError(f"input_size must be (C, H, W), got {input_size!r}") from None
    if c not in (1, 3) or h < 1 or w < 1:
        raise DataError(f"input_size must be (C, H, W) with C 1 or 3, got {input_size!r}")
    return c, h, w


def open_dataset(spec: str | None, split: str, *, input_size: tuple[int, int, int],
                 train_transform: bool, preset: str | None = None,
                 fail_fast: bool = False, max_pixels: int | None = None,
                 normalisation: tuple[Sequence[float], Sequence[float]] | None = None) -> Dataset:
    """Open the dataset named by ``spec`` (see the module docstring) for ``split``.

    ``input_size`` is the model's ``(C, H, W)``: images come out as float32 tensors of
    that shape, normalised with the dataset's statistics, or with ``normalisation``
    (``(mean, std)``) where given: a network trained on other data sees these images as
    it saw its own. ``train_transform`` selects the preset's augmentation (True) or its
    evaluation pipeline (False). ``preset`` overrides the dataset's default (digits ->
    "digits", CIFAR -> "cifar", ImageNet and folders -> "imagenet"; synthetic data, which
    is no image and is never transformed, has "none" with mean 0 and std 1). ``fail_fast``
    makes an unreadable image file raise ``BadImageError`` instead of being skipped and
    counted; ``max_pixels`` bounds the pixels one image file may decode to (default:
    ``images.get_max_pixels()``).
    """
    input_size = _check_input_size(input_size)
    split = _split_name(split)
    chosen: dict = {}

    def transform_for(default_preset: str, mean: Sequence[float], std: Sequence[float]) -> Callable:
        mean, std = normalisation or (mean, std)
        chosen.update(preset=preset or default_preset, mean=tuple(mean), std=tuple(std))
        return build_transform(chosen["preset"], train=train_transform, input_size=input_size,
                               mean=mean, std=std)

    dataset = _open(spec, split, input_size, transform_for, fail_fast, max_pixels)
    if not chosen:  # synthetic: already what the network takes
        chosen.update(preset="none", mean=(0.0,) * input_size[0], std=(1.0,) * input_size[0])
    dataset.preset, dataset.mean, dataset.std = chosen["preset"], chosen["mean"], chosen["std"]
    return dataset


def _open(spec: str | None, split: str, input_size, transform_for, fail_fast: bool,
          max_pixels: int | None) -> Dataset:
    if spec is None or spec == "digits" or str(spec).startswith("digits:"):
        dataset = _digits(split, input_size, transform_for)
        selection = str(spec).partition(":")[2] if spec else ""
        return select_classes(dataset, selection) if selection else dataset
    spec = str(spec)
    if os.path.isdir(os.path.expanduser(spec)):
        kind, arg = "folder", spec
    else:
        kind, sep, arg = spec.partition(":")
        if kind not in ("synthetic", "cifar10", "cifar100", "imagenet", "folder"):
            raise DataError(f"unknown dataset {spec!r}: expected {SPEC_HELP} "
                            "(an image-folder path must exist)")
        if kind != "synthetic" and not arg:
            raise DataError(f"{spec}: expected {kind}:DIR")
    if kind == "synthetic":
        return _synthetic(arg, split, input_size)
    root = os.path.expanduser(arg)
    if kind in ("cifar10", "cifar100"):
        return _cifar(kind, root, split, transform_for)
    if kind == "imagenet":
        return _imagenet(root, split, transform_for, fail_fast, max_pixels)
    return _folder(root, split, transform_for, fail_fast, max_pixels)
