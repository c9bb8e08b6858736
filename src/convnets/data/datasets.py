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

Nothing is downloaded; a missing or malformed directory raises ``ValueError`` with one
line that says what was expected. Splits are ``"train"`` and ``"val"``, with ``"test"``
a synonym of ``"val"`` (for folders: whichever of val/ and test/ exists, val/ first).
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import pickle
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import DataError

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


class BadImageError(DataError):
    """An image file that cannot be decoded (raised only with ``fail_fast=True``)."""


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
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
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

def _to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB. Transparent pixels are composited on white (what a viewer
    shows for a transparent PNG); 16-bit grey is scaled to 8 bits; CMYK uses PIL's
    conversion (Adobe's inverted CMYK JPEGs are un-inverted by PIL's decoder)."""
    if im.mode == "RGB":
        return im
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if im.mode.startswith("I") or im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        if im.mode != "F":
            arr = arr / 257.0  # 16-bit range to 8-bit
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L").convert("RGB")
    return im.convert("RGB")


def load_rgb(path: str) -> Image.Image:
    """Decode an image file fully (so truncation is detected here) and convert to RGB."""
    with Image.open(path) as im:
        im.load()
        return _to_rgb(im)


class ImageFolderDataset(_Labelled):
    """Image files with labels, decoded with PIL on access.

    A file that cannot be decoded (not an image, truncated, corrupt) is skipped: the
    next readable file in the list (wrapping around) is returned in its place, so batch
    sizes stay constant, which matters for DistributedDataParallel. Each bad file is
    flagged in a byte array in shared memory, so flags set in DataLoader worker
    processes (fork or spawn) are seen by the main process: ``bad_files()`` counts the
    distinct bad files met since the last ``reset_bad_files()``, ``bad_file_names()``
    lists them. With ``fail_fast=True`` the first bad file raises ``BadImageError``.
    (The shared array can be pickled only to start a process, as DataLoader does; the
    dataset cannot be deep-copied.)
    """

    def __init__(self, samples: list[tuple[str, int]], classes: list[str],
                 transform: Callable | None, *, fail_fast: bool = False, root: str = "") -> None:
        self.samples, self.classes, self.transform = samples, classes, transform
        self.targets = [label for _, label in samples]
        self.fail_fast, self.root = fail_fast, root
        self._bad = multiprocessing.Array(ctypes.c_uint8, max(1, len(samples)), lock=False)

    def __len__(self) -> int:
        return len(self.samples)

    def _flags(self) -> np.ndarray:
        return np.frombuffer(self._bad, dtype=np.uint8)[: len(self.samples)]

    def bad_files(self) -> int:
        return int(self._flags().sum())

    def bad_file_names(self) -> list[str]:
        return [self.samples[i][0] for i in np.flatnonzero(self._flags())]

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
        for k in range(n):
            j = (i + k) % n
            if self._bad[j]:
                continue
            path, label = self.samples[j]
            try:
                img = load_rgb(path)
            except Exception as err:  # any decoder failure: PIL raises OSError, SyntaxError, ...
                if self.fail_fast:
                    raise BadImageError(f"unreadable image {path}: {err}") from None
                self._bad[j] = 1
                continue
            return (self.transform(img) if self.transform else img), label
        raise BadImageError(f"{self.root}: none of the {n} image files is readable")


def _is_image_file(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMG_EXTENSIONS)


def _class_dirs(root: str) -> list[str]:
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


def _scan(root: str, classes: list[str], what: str) -> list[tuple[str, int]]:
    """(path, label) for every image file under root/<class>/ (recursively, sorted)."""
    index = {c: k for k, c in enumerate(classes)}
    present = _class_dirs(root)
    unknown = [c for c in present if c not in index]
    if unknown:
        raise ValueError(f"{what}: class folder {os.path.join(root, unknown[0])} is not among "
                         f"the {len(classes)} training classes")
    samples = []
    for c in present:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, c), followlinks=True):
            dirnames.sort()
            samples += [(os.path.join(dirpath, f), index[c]) for f in sorted(filenames)
                        if _is_image_file(f)]
    return samples


# --- spec handlers ----------------------------------------------------------------------

def _split_name(split: str) -> str:
    if split not in ("train", "val", "test"):
        raise ValueError(f"unknown split {split!r}: expected train, val or test")
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
        raise ValueError(f"synthetic:{arg}: expected synthetic[:N[:C]] with N samples and "
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


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core.") and int(np.__version__.split(".")[0]) >= 2:
            module = "numpy._core." + module[len("numpy.core."):]  # avoid the deprecated alias
        return super().find_class(module, name)


def restricted_pickle_load(path: str) -> object:
    """Load a pickle that may contain only plain containers, bytes, numbers and numpy
    arrays. Used for the CIFAR python-version files only: pickle is their official format
    (written by Python 2, hence ``encoding='bytes'``)."""
    with open(path, "rb") as f:
        return _RestrictedUnpickler(f, encoding="bytes").load()


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
        raise ValueError(f"{where}: no such directory; expected {expected}")
    missing = [f for f in files + [meta] if not os.path.isfile(os.path.join(root, f))]
    if missing:
        raise ValueError(f"{where}: expected {expected}; missing {', '.join(missing)}")

    def read(name: str) -> dict:
        try:
            obj = restricted_pickle_load(os.path.join(root, name))
        except Exception as err:
            raise ValueError(f"{where}: {name} is not a CIFAR python-version pickle ({err})") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: {name} is not a CIFAR python-version pickle (no dict)")
        return obj

    names = read(meta).get(names_key)
    if not isinstance(names, list) or len(names) != n_classes:
        raise ValueError(f"{where}: {meta} has no list of {n_classes} {names_key.decode()}")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    images, labels = [], []
    for name in files:
        batch = read(name)
        data, lab = batch.get(b"data"), batch.get(labels_key)
        if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
                or data.shape[1] != 3072 or lab is None or len(lab) != len(data)):
            raise ValueError(f"{where}: {name} must hold b'data' (uint8, N x 3072) and "
                             f"{labels_key!r} (N labels)")
        lab = np.asarray(lab, dtype=np.int64)
        if len(lab) and (lab.min() < 0 or lab.max() >= n_classes):
            raise ValueError(f"{where}: {name} has labels outside 0..{n_classes - 1}")
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


def _imagenet(root: str, split: str, transform_for, fail_fast: bool):
    where = f"imagenet:{root}"
    expected = ("expected train/<wnid>/*.JPEG and val/<wnid>/*.JPEG "
                "(ILSVRC-2012, validation images sorted into class folders)")
    if not os.path.isdir(root):
        raise ValueError(f"{where}: no such directory; {expected}")
    sub = os.path.join(root, split)
    if not os.path.isdir(sub):
        raise ValueError(f"{where}: no {split}/ folder; {expected}")
    class_root = os.path.join(root, "train") if os.path.isdir(os.path.join(root, "train")) else sub
    wnids = _class_dirs(class_root)
    for d in {class_root, sub}:
        if not _class_dirs(d):
            flat = any(_is_image_file(e.name) for e in os.scandir(d))
            hint = f"; the images lie directly in {d}, sort them into class folders" if flat else ""
            raise ValueError(f"{where}: no class folders in {d}; {expected}{hint}")
    samples = _scan(sub, wnids, where)
    if not samples:
        raise ValueError(f"{where}: no image files under {sub}; {expected}")
    ds = ImageFolderDataset(samples, _imagenet_names(wnids),
                            transform_for("imagenet", IMAGENET_MEAN, IMAGENET_STD),
                            fail_fast=fail_fast, root=sub)
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


def _folder(root: str, split: str, transform_for, fail_fast: bool):
    where = f"folder:{root}"
    expected = "expected DIR/<class>/<image files>, or DIR/train/<class>/ and DIR/val/<class>/"
    if not os.path.isdir(root):
        raise ValueError(f"{where}: no such directory; {expected}")
    train_dir = os.path.join(root, "train")
    val_dirs = [os.path.join(root, v) for v in _VAL_NAMES if os.path.isdir(os.path.join(root, v))]
    if os.path.isdir(train_dir) or val_dirs:
        if split == "train":
            if not os.path.isdir(train_dir):
                raise ValueError(f"{where}: no train/ folder beside {os.path.basename(val_dirs[0])}/; {expected}")
            sub = train_dir
        else:
            if not val_dirs:
                raise ValueError(f"{where}: no val/ or test/ folder beside train/; {expected}")
            sub = val_dirs[0]
        class_root = train_dir if os.path.isdir(train_dir) else sub
    else:
        sub = class_root = root
    classes = _class_dirs(class_root)
    if not classes:
        raise ValueError(f"{where}: no class folders in {class_root}; {expected}")
    samples = _scan(sub, classes, where)
    if sub == root:  # one flat folder: hold out a fixed tenth of each class for testing
        samples = _hold_out(samples, split)
    if not samples:
        raise ValueError(f"{where}: no image files ({', '.join(IMG_EXTENSIONS[:4])}, ...) "
                         f"{'held out ' if split != 'train' and sub == root else ''}under {sub}; {expected}")
    return ImageFolderDataset(samples, classes,
                              transform_for("imagenet", IMAGENET_MEAN, IMAGENET_STD),
                              fail_fast=fail_fast, root=sub)


def _check_input_size(input_size) -> tuple[int, int, int]:
    try:
        c, h, w = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise ValueError(f"input_size must be (C, H, W), got {input_size!r}") from None
    if c not in (1, 3) or h < 1 or w < 1:
        raise ValueError(f"input_size must be (C, H, W) with C 1 or 3, got {input_size!r}")
    return c, h, w


def open_dataset(spec: str | None, split: str, *, input_size: tuple[int, int, int],
                 train_transform: bool, preset: str | None = None,
                 fail_fast: bool = False,
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
    counted.
    """
    input_size = _check_input_size(input_size)
    split = _split_name(split)
    chosen: dict = {}

    def transform_for(default_preset: str, mean: Sequence[float], std: Sequence[float]) -> Callable:
        mean, std = normalisation or (mean, std)
        chosen.update(preset=preset or default_preset, mean=tuple(mean), std=tuple(std))
        return build_transform(chosen["preset"], train=train_transform, input_size=input_size,
                               mean=mean, std=std)

    dataset = _open(spec, split, input_size, transform_for, fail_fast)
    if not chosen:  # synthetic: already what the network takes
        chosen.update(preset="none", mean=(0.0,) * input_size[0], std=(1.0,) * input_size[0])
    dataset.preset, dataset.mean, dataset.std = chosen["preset"], chosen["mean"], chosen["std"]
    return dataset


def _open(spec: str | None, split: str, input_size, transform_for, fail_fast: bool) -> Dataset:
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
        return _imagenet(root, split, transform_for, fail_fast)
    return _folder(root, split, transform_for, fail_fast)
