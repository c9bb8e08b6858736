"""Image shards: a data set as a few large tar files plus an index, for clusters, where
reading 1.28 million small files from a shared or object store is the bottleneck.

Layout of a shard folder (``convnets shards SPEC OUT`` writes it)::

    index.json            classes, preset, mean, std, and per split: the shards and, for
                          each sample, (shard, byte offset, size, label, original name)
    train-000000.tar      WebDataset's layout: members KEY.jpg (or .png, ...) and KEY.cls
    val-000000.tar

The images are the original files' bytes (no re-encoding); images held in memory
(digits, CIFAR) are stored as PNG. The tars are plain WebDataset shards, so timm's
``--dataset wds/...`` and ``webdataset`` read them too; convnets reads them by the
index, as a map-style dataset: one seek and one read per image, which is what makes
the epoch's global order, exact resume within an epoch and evaluation that counts each
image once the same as for image folders. A shard folder may be a local path or an
``http(s)://`` URL (each image is one HTTP range request).
"""
from __future__ import annotations

import functools
import io
import json
import os
import tarfile
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import DataError
from .image_folder import ImageFolderDataset
from .images import BadImageError, display_path, load_rgb, plain_jpeg_tensor

__all__ = ["INDEX", "FORMAT", "ShardDataset", "read_index", "check_shards", "write_shards"]

INDEX = "index.json"
FORMAT = "convnets-shards/1"


def _is_url(root: str) -> bool:
    return root.startswith(("http://", "https://"))


def _join(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}" if _is_url(root) else os.path.join(root, name)


def _read_range(root: str, name: str, offset: int, size: int) -> bytes:
    """``size`` bytes at ``offset`` of shard ``name`` (fewer where the shard is shorter)."""
    where = _join(root, name)
    if _is_url(root):
        req = urllib.request.Request(where, headers={"Range": f"bytes={offset}-{offset + size - 1}"})
        with urllib.request.urlopen(req, timeout=60) as reply:
            if reply.status != 206:  # the whole file: its first bytes are not the image
                raise DataError(f"{where}: the server does not answer HTTP range requests, "
                                "which reading shards by URL needs")
            return reply.read(size)
    with open(where, "rb") as f:
        f.seek(offset)
        return f.read(size)


def read_index(root: str) -> dict:
    """The index of the shard folder (or URL) ``root``; a DataError names what is wrong."""
    where = _join(root, INDEX)
    try:
        if _is_url(root):
            with urllib.request.urlopen(where, timeout=60) as reply:
                index = json.loads(reply.read())
        else:
            with open(where, "rb") as f:
                index = json.load(f)
    except (OSError, urllib.error.URLError) as err:
        raise DataError(f"shards:{root}: cannot read {INDEX} ({getattr(err, 'strerror', None) or err}); "
                        "expected a folder written by `convnets shards`") from None
    except ValueError as err:
        raise DataError(f"shards:{root}: {INDEX} is not JSON ({err})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise DataError(f"shards:{root}: {INDEX} is not a {FORMAT} index")
    return index


def check_shards(root: str, shards: list[dict]) -> None:
    """A truncated or missing local shard is one line at once, not a failure mid-epoch."""
    if _is_url(root):
        return
    for shard in shards:
        path = _join(root, shard["name"])
        size = os.path.getsize(path) if os.path.isfile(path) else None
        if size != shard["bytes"]:
            what = "missing" if size is None else f"truncated ({size} of {shard['bytes']} bytes)"
            raise DataError(f"shards:{root}: shard {shard['name']} is {what}; write the shards again")


def _load_named(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """:func:`load_rgb` of an image's bytes, a bad one named ``name`` (not "image data")."""
    try:
        return load_rgb(data, max_pixels=max_pixels)
    except BadImageError as err:
        raise BadImageError(str(err).replace("image data", name, 1), err.reason) from None


class ShardDataset(ImageFolderDataset):
    """The images of one split of a shard folder, decoded on access, with the bad-file
    accounting of :class:`ImageFolderDataset` (a corrupt image is skipped and named by its
    original file name and shard)."""

    def __init__(self, root: str, shards: list[str], locations: np.ndarray,
                 samples: list[tuple[str, int]], classes: list[str], transform: Callable | None = None,
                 *, fail_fast: bool = False, max_pixels: int | None = None) -> None:
        # locations[i]: (shard number, byte offset, size) of sample i's image
        self.shard_root, self.shards, self.locations = root, shards, locations
        super().__init__(samples, classes, transform, fail_fast=fail_fast, root=root,
                         max_pixels=max_pixels)

    @classmethod
    def of_split(cls, root: str, split: dict, classes: list[str], **kw) -> "ShardDataset":
        """The dataset of one split of ``root``'s index."""
        shards = [s["name"] for s in split["shards"]]
        rows = split["samples"]
        locations = np.asarray([row[:3] for row in rows], dtype=np.int64).reshape(-1, 3)
        samples = [(f"{row[4]} (in {shards[row[0]]})", int(row[3])) for row in rows]
        return cls(root, shards, locations, samples, classes, **kw)

    def _bytes(self, i: int) -> bytes:
        shard, offset, size = (int(v) for v in self.locations[i])
        data = _read_range(self.shard_root, self.shards[shard], offset, size)
        if len(data) != size:
            raise BadImageError(f"{self.samples[i][0]}: truncated shard ({len(data)} of {size} bytes)",
                                "truncated")
        return data

    def raw_image(self, i: int) -> Image.Image:
        return _load_named(self._bytes(i), self.samples[i][0], self.max_pixels)

    def _decode(self, i: int):
        data = self._bytes(i)
        if getattr(self.transform, "takes_uint8_tensors", False):
            fast = plain_jpeg_tensor(data, self.max_pixels)
            if fast is not None:
                return fast
        img = _load_named(data, self.samples[i][0], self.max_pixels)
        if getattr(self.transform, "takes_uint8_tensors", False):
            return torch.from_numpy(np.array(img)).permute(2, 0, 1)
        return img

    def restricted_to(self, keep: Sequence[int]) -> "ShardDataset":
        relabel = {old: new for new, old in enumerate(keep)}
        rows = [i for i, (_, label) in enumerate(self.samples) if label in relabel]
        subset = ShardDataset(self.shard_root, self.shards, self.locations[rows],
                              [(self.samples[i][0], relabel[self.samples[i][1]]) for i in rows],
                              [self.classes[k] for k in keep], self.transform,
                              fail_fast=self.fail_fast, max_pixels=self.max_pixels)
        subset.preset, subset.mean, subset.std = self.preset, self.mean, self.std
        return subset

    def _where(self) -> str:
        return f"shards:{display_path(self.root)}"


# --- writing -------------------------------------------------------------------------------

def _encoded(dataset, i: int) -> tuple[bytes, str, str] | BadImageError:
    """Sample ``i``'s image as file bytes, their extension and the original name: an image
    file's own bytes (checked to decode), else the in-memory image as PNG; or why the file
    cannot be used."""
    try:
        return _encode(dataset, i)
    except BadImageError as err:
        return err


def _encode(dataset, i: int) -> tuple[bytes, str, str]:
    samples = getattr(dataset, "samples", None)
    if isinstance(dataset, ImageFolderDataset) and samples:
        path = samples[i][0]
        try:
            with open(path, "rb") as f:  # a regular file: the folder walker lists no others
                data = f.read()
        except OSError as err:
            raise BadImageError(f"{display_path(path)}: cannot be read ({err.strerror or err})",
                                "I/O error") from None
        _load_named(data, display_path(path), dataset.max_pixels)  # a bad file: BadImageError
        ext = os.path.splitext(path)[1].lower().lstrip(".") or "img"
        rel = os.path.relpath(path, dataset.root) if dataset.root else path
        return data, ext, display_path(rel)
    img = dataset.raw_image(i)
    if isinstance(img, torch.Tensor):
        arr = img.float() if img.is_floating_point() else img
        arr = (arr * 255).round().clamp(0, 255) if img.is_floating_point() else arr
        arr = arr.to(torch.uint8).permute(1, 2, 0).numpy()
        img = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue(), "png", f"{i:08d}.png"


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> int:
    """Add member ``name``; returns the offset of its data in the tar."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o444, 0
    offset = tar.offset + tarfile.BLOCKSIZE  # one header block (names are short)
    tar.addfile(info, io.BytesIO(data))
    return offset


def _in_order(dataset, workers: int, chunk: int = 256):
    """``_encoded(dataset, i)`` for i = 0, 1, ...; read and checked by ``workers`` threads
    (file reads and decoding release the GIL), a chunk at a time to bound memory."""
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for start in range(0, len(dataset), chunk):
            yield from pool.map(functools.partial(_encoded, dataset),
                                range(start, min(start + chunk, len(dataset))))


def _write_split(dataset, split: str, out: str, shard_bytes: int, progress: bool,
                 skipped: list[str], workers: int) -> dict:
    from tqdm import tqdm

    shards: list[dict] = []
    rows: list[list] = []
    tar = None
    try:
        for i, encoded in enumerate(tqdm(_in_order(dataset, workers), total=len(dataset),
                                         desc=f"{split} shards", unit="img", disable=not progress)):
            if isinstance(encoded, BadImageError):
                skipped.append(str(encoded))
                continue
            data, ext, name = encoded
            if tar is None or tar.offset >= shard_bytes:
                if tar is not None:
                    tar.close()
                    shards[-1]["bytes"] = os.path.getsize(_join(out, shards[-1]["name"]))
                shards.append({"name": f"{split}-{len(shards):06d}.tar", "count": 0})
                tar = tarfile.open(_join(out, shards[-1]["name"]), "w", format=tarfile.USTAR_FORMAT)
            key = f"{len(rows):08d}"
            label = int(dataset.targets[i])
            rows.append([len(shards) - 1, _add(tar, f"{key}.{ext}", data), len(data), label, name])
            _add(tar, f"{key}.cls", str(label).encode())
            shards[-1]["count"] += 1
    finally:
        if tar is not None:
            tar.close()
            shards[-1]["bytes"] = os.path.getsize(_join(out, shards[-1]["name"]))
    return {"shards": shards, "samples": rows}


def write_shards(spec: str, out: str, *, shard_bytes: int = 256 * 2**20, workers: int = 4,
                 progress: bool = False, log: Callable[[str], None] = print) -> dict:
    """Write the train and test splits of the data ``spec`` names as shards in the new
    folder ``out`` (refused where it exists), reading with ``workers`` threads; returns the
    index. Unreadable image files are skipped and named."""
    from .sources import Request, find_source

    if os.path.exists(out):
        raise DataError(f"{out} exists; shards are written to a new folder")
    source, arg = find_source(spec)
    opened = {split: source.open(Request(arg, split, (3, 224, 224))) for split in ("train", "val")}
    partial = f"{out.rstrip(os.sep)}.partial"
    os.makedirs(partial, exist_ok=True)
    skipped: list[str] = []
    splits = {split: _write_split(o.dataset, split, partial, shard_bytes, progress, skipped, workers)
              for split, o in opened.items()}
    train = opened["train"]
    index = {"format": FORMAT, "source": spec, "classes": list(train.dataset.classes),
             "preset": train.preset, "mean": list(train.mean), "std": list(train.std),
             "selection": train.selection, "splits": splits, "skipped": skipped}
    with open(os.path.join(partial, INDEX), "w") as f:
        json.dump(index, f)
    os.replace(partial, out)
    for line in skipped:
        log(f"skipped {line}")
    return index
