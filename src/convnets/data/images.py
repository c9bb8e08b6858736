"""Decoding one image file into 8-bit RGB, whatever it holds, with bounded memory.

``load_rgb(source)`` is the one loader for image folders, ImageNet and (later) prediction
and serving: ``source`` is a path, the file's bytes, or a binary file object. It

- reads only regular files (a named pipe would block forever), and refuses with one
  :class:`BadImageError` line that names the file and says what is wrong: no such file,
  a directory, permission denied, empty, not an image, truncated or corrupt, too large;
- bounds the memory of one decode: an image of more than ``max_pixels`` pixels
  (default :data:`DEFAULT_MAX_PIXELS`, see :func:`set_max_pixels`) is refused before
  its pixels are decoded, except a JPEG, which is decoded at 1/2, 1/4 or 1/8 scale by
  its own DCT scaling (what PIL's ``draft`` and ``thumbnail`` do) when that brings it
  under the limit. A PNG of 18 KB can declare 12000 x 12000 pixels: 1.4 GB decoded;
- takes the first frame of animations and multi-page files, and applies the EXIF
  orientation (``PIL.ImageOps.exif_transpose``), so that phone photos come out upright;
- converts every PIL mode to the 8-bit RGB values it stands for (:func:`to_rgb`).

``load_rgb_tensor(path)`` is the same image as a uint8 ``(3, H, W)`` tensor, what the
training transforms start from. A plain JPEG (baseline or progressive, YCbCr or grey,
upright, within the pixel limit: nearly every photograph in ImageNet) is decoded by
TorchCodec's ``decode_jpeg`` (libjpeg-turbo) straight into the tensor; measured equal to
PIL's pixels (the same library underneath) and about 0.3 ms faster per ImageNet-sized
image, mostly the PIL-to-array copy it avoids (benchmarks/RESULTS.md, "JPEG training
pipeline"). Everything else (CMYK, EXIF-rotated, too large, other formats, anything the
fast decoder refuses) takes the PIL path above, which also names the fault of a bad file.
(torchvision 0.29 deprecates its own image decoders in favour of TorchCodec's.)

The values of each mode (tested mode by mode in tests/reliability/test_images.py):

- ``1``, ``L``, ``P``, ``RGB``, ``CMYK``, ``YCbCr``, ``HSV``, ``LAB``: PIL's conversion
  (CMYK as PIL's decoder delivers it, Adobe's inverted CMYK JPEGs already un-inverted;
  CIE L*a*b* to sRGB, so that L* = 50 is the sRGB grey 119).
- 16-bit grey (``I;16``, ``I;16L``, ``I;16B``, ``I;16N``) and ``I`` (PIL's mode for 16-bit
  PNG, PGM and TIFF data; PIL scales other PGM ranges to 16 bits): v / 257, rounded,
  so 65535 is 255 and the mid-grey 32896 is 128; values outside 0..65535 are clipped.
  (PIL's own conversion clips at 255, so any 16-bit image comes out nearly white.)
- ``F`` (32-bit float, TIFF and PFM): values in [0, 1], the convention of float images
  in torchvision, scikit-image and OpenCV, scaled by 255 and rounded; values outside
  are clipped, NaN is 0. (PIL's own conversion reads floats on the 0..255 scale, so a
  [0, 1] image comes out black.) Float data on another scale must be rescaled first.
- Transparency, as an alpha channel (``RGBA``, ``LA``, ``PA``), a premultiplied one
  (``RGBa``, ``La``: colour + (255 - alpha)) or a transparent colour or palette entry
  (``info["transparency"]``, 16-bit grey included): composited on white, what an image
  viewer shows.
"""
from __future__ import annotations

import functools
import io
import os
import re
import stat
import warnings
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..core import first_line
from ..errors import DataError

__all__ = ["BadImageError", "REASONS", "DEFAULT_MAX_PIXELS", "load_rgb", "load_rgb_tensor", "to_rgb",
           "set_max_pixels", "get_max_pixels", "display_path", "plain_jpeg_tensor"]

# 50 megapixels: an 8,192 x 6,104 image, 200 MB as PIL holds RGB (4 bytes a pixel) and
# about twice that for the widest conversions; PIL's own bomb limit is 89.5 megapixels.
DEFAULT_MAX_PIXELS = 50_000_000
_max_pixels = DEFAULT_MAX_PIXELS

_DCT_SCALES = (2, 4, 8)  # the reductions a JPEG decoder can apply while decoding


# Why a file was refused, in a few words: datasets keep the index of the reason per file.
REASONS = ("unreadable", "no such file", "a directory", "not a regular file", "permission denied",
           "I/O error", "empty", "not an image", "corrupt", "truncated or corrupt", "too large")


class BadImageError(DataError):
    """An image file that cannot be used; ``reason`` (one of :data:`REASONS`) says why."""

    def __init__(self, message: str, reason: str = "unreadable") -> None:
        super().__init__(message)
        self.reason = reason


def set_max_pixels(n: int | None) -> None:
    """Set the default pixel limit of :func:`load_rgb` (``None``: back to
    :data:`DEFAULT_MAX_PIXELS`). Datasets take the limit in force when they are opened."""
    global _max_pixels
    if n is not None and (not isinstance(n, int) or n < 1):
        raise DataError(f"max_pixels must be a positive integer, got {n!r}")
    _max_pixels = DEFAULT_MAX_PIXELS if n is None else n


def get_max_pixels() -> int:
    return _max_pixels


def display_path(path: str) -> str:
    """``path`` as text that can be printed and written anywhere: bytes that are not
    UTF-8 (file names from other systems) become ``\\xNN`` escapes, newlines ``\\n``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace").replace("\n", "\\n")


# --- decoding ----------------------------------------------------------------------------

def load_rgb(source: str | os.PathLike | bytes | BinaryIO, *,
             max_pixels: int | None = None) -> Image.Image:
    """Decode an image (path, bytes or binary file) into an upright 8-bit RGB image; see
    the module docstring. Raises :class:`BadImageError` naming the file."""
    limit = _max_pixels if max_pixels is None else max_pixels
    if isinstance(source, (str, os.PathLike)):
        name = display_path(os.fspath(source))
        with _open_regular(os.fspath(source), name) as f:
            return _decode(f, name, limit)
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = "image data"
        if not len(source):
            raise BadImageError(f"{name}: empty (0 bytes)", "empty")
        return _decode(io.BytesIO(source), name, limit)
    return _decode(source, getattr(source, "name", None) or "image data", limit)


def load_rgb_tensor(path: str | os.PathLike, *, max_pixels: int | None = None) -> torch.Tensor:
    """:func:`load_rgb` of a file as a uint8 ``(3, H, W)`` tensor, pixel for pixel; plain
    JPEGs are decoded straight into it (see the module docstring)."""
    limit = _max_pixels if max_pixels is None else max_pixels
    name = display_path(os.fspath(path))
    with _open_regular(os.fspath(path), name) as f:
        if os.fstat(f.fileno()).st_size > _WHOLE_FILE_BYTES:  # PIL reads it as it decodes
            return _chw(_decode(f, name, limit))
        try:
            data = f.read()
        except OSError as err:
            raise BadImageError(f"{name}: cannot be read ({err.strerror or err})", "I/O error") from None
    fast = plain_jpeg_tensor(data, limit)
    return fast if fast is not None else _chw(_decode(io.BytesIO(data), name, limit))


def _chw(im: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(im)).permute(2, 0, 1)  # np.array: a writable copy


# Files are read whole for the fast decoder up to this size; a larger file (no photograph
# within the pixel limit is this large) is left to PIL, which reads only what it decodes.
_WHOLE_FILE_BYTES = 64 * 2**20


_ORIENTATION = 0x0112  # EXIF; PIL's getexif() also reads it from XMP


def plain_jpeg_tensor(data: bytes, limit: int) -> torch.Tensor | None:
    """The RGB tensor of JPEG file bytes that need none of the PIL path's handling (plain
    RGB or grey, upright, within ``limit`` pixels), decoded by TorchCodec; else None."""
    if data[:3] != b"\xff\xd8\xff":
        return None
    decode = _jpeg_decoder()
    if decode is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:  # the header only
                if (im.format != "JPEG" or im.mode not in ("RGB", "L")
                        or im.width * im.height > limit or im.getexif().get(_ORIENTATION, 1) != 1):
                    return None
        return decode(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode="RGB")
    except Exception:  # damaged: the PIL path says how, in one line
        return None


@functools.cache
def _jpeg_decoder():
    """TorchCodec's decode_jpeg, or None where it cannot be loaded (then PIL decodes)."""
    try:
        from torchcodec.decoders import decode_jpeg
    except Exception:  # not installed, or its native library does not load here
        return None
    return decode_jpeg


def _open_regular(path: str, name: str) -> BinaryIO:
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise BadImageError(f"{name}: is a directory, not an image file", "a directory")
        if not stat.S_ISREG(st.st_mode):  # a pipe, socket or device: reading could block
            raise BadImageError(f"{name}: not a regular file", "not a regular file")
        if st.st_size == 0:
            raise BadImageError(f"{name}: empty (0 bytes)", "empty")
        return open(path, "rb")
    except FileNotFoundError:
        raise BadImageError(f"{name}: no such file", "no such file") from None
    except PermissionError:
        raise BadImageError(f"{name}: permission denied", "permission denied") from None
    except OSError as err:
        raise BadImageError(f"{name}: cannot be read ({err.strerror or err})", "I/O error") from None


def _decode(f: BinaryIO, name: str, limit: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Our limit (below PIL's) is checked next, with a message that names the file.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(f)
    except Image.DecompressionBombError as err:
        # PIL refuses at open what exceeds twice its own limit, before we see the size;
        # its message carries the pixel count, which is all a user needs from it.
        count = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{int(count.group(1)):,} pixels" if count else "too many pixels"
        raise BadImageError(f"{name}: {size}, more than the limit of {_open_limit(limit):,} "
                            "(refused before decoding)", "too large") from None
    except UnidentifiedImageError:
        raise BadImageError(f"{name}: not an image file (or a format PIL cannot read)",
                            "not an image") from None
    except Exception as err:  # a damaged header: PIL's parsers fail in many ways
        raise BadImageError(f"{name}: corrupt ({first_line(err, with_type=True)})", "corrupt") from None
    with im:
        _bound_pixels(im, name, limit)
        try:
            im.load()  # decode fully here, so that truncation is found here
            upright = ImageOps.exif_transpose(im)
        except Exception as err:
            # Decoders report damaged data as OSError, SyntaxError, ValueError,
            # struct.error, EOFError, ...: all mean a truncated or corrupt file.
            raise BadImageError(f"{name}: truncated or corrupt ({first_line(err, with_type=True)})",
                                "truncated or corrupt") from None
        return to_rgb(upright)


def _open_limit(limit: int) -> int:
    """The pixel count above which a file is refused: ours, or PIL's own refusal at open
    (twice ``Image.MAX_IMAGE_PIXELS``) where that is lower."""
    pil = Image.MAX_IMAGE_PIXELS
    return limit if pil is None else min(limit, 2 * int(pil))


def _bound_pixels(im: Image.Image, name: str, limit: int) -> None:
    w, h = im.size
    if w * h <= limit:
        return
    if im.format in ("JPEG", "MPO"):  # MPO: the multi-picture JPEG of many cameras
        for s in _DCT_SCALES:
            size = (-(-w // s), -(-h // s))
            if size[0] * size[1] <= limit:
                im.draft(None, size)
                return
    raise BadImageError(f"{name}: {w} x {h} pixels, more than the limit of {limit:,} (refused "
                        "to bound decoding memory; downscale the file, or raise the limit "
                        "with convnets.data.set_max_pixels)", "too large")


# --- modes -------------------------------------------------------------------------------

_PREMULTIPLIED = ("La", "RGBa")
_ALPHA = ("RGBA", "LA", "PA")


def to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL image as 8-bit RGB with the values the module docstring lists."""
    mode = im.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        return _wide_grey(im)
    if mode in _PREMULTIPLIED:
        arr = np.asarray(im).astype(np.uint16)
        colour, alpha = arr[..., :-1], arr[..., -1:]
        out = np.minimum(colour + (255 - alpha), 255).astype(np.uint8)
        return Image.fromarray(np.broadcast_to(out, (*out.shape[:2], 3)).copy(), "RGB")
    if mode in _ALPHA or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im if mode == "RGB" else im.convert("RGB")


def _wide_grey(im: Image.Image) -> Image.Image:
    arr = np.asarray(im)
    if im.mode == "F":
        grey = np.clip(np.rint(np.nan_to_num(arr, nan=0.0) * 255.0), 0, 255).astype(np.uint8)
    else:  # 16-bit samples: round(v / 257), in integers
        wide = np.clip(arr.astype(np.int32), 0, 65535)
        grey = ((wide + 128) // 257).astype(np.uint8)
    transparent = im.info.get("transparency")
    if isinstance(transparent, (int, float)) and im.mode != "F":
        grey[arr == transparent] = 255  # on white
    return Image.fromarray(grey, "L").convert("RGB")

