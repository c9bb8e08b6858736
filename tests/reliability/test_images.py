"""One image file into 8-bit RGB: every PIL mode written as a real file in a real format
(or, for the modes no format stores, made in memory), EXIF orientation, bounded memory,
and one line naming the file for every kind of file that cannot be used."""
from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from convnets.data import BadImageError, load_rgb
from convnets.data.images import load_rgb_tensor
from helpers import within_seconds


def _rgb(path, **kw) -> np.ndarray:
    im = load_rgb(str(path), **kw)
    assert im.mode == "RGB"
    return np.asarray(im).astype(int)


def _grey(values) -> np.ndarray:
    """Expected RGB pixels of a row of grey values."""
    return np.repeat(np.asarray(values, int)[None, :, None], 3, axis=2)


def _save(im: Image.Image, path, **kw):
    im.save(path, **kw)
    with Image.open(path) as back:  # the mode under test is the one the file holds
        return back.mode, dict(back.info)


# --- modes ---------------------------------------------------------------------------------

def test_mode_1(tmp_path):
    im = Image.new("1", (2, 1))
    im.putpixel((1, 0), 1)
    assert _save(im, tmp_path / "a.png")[0] == "1"
    assert (_rgb(tmp_path / "a.png") == _grey([0, 255])).all()
    _save(im, tmp_path / "t.png", transparency=0)  # black is transparent: white
    assert (_rgb(tmp_path / "t.png") == _grey([255, 255])).all()


def test_mode_L_with_and_without_transparency(tmp_path):
    im = Image.fromarray(np.array([[77, 30]], np.uint8))
    assert _save(im, tmp_path / "a.png")[0] == "L"
    assert (_rgb(tmp_path / "a.png") == _grey([77, 30])).all()
    assert _save(im, tmp_path / "t.png", transparency=77)[1]["transparency"] == 77
    assert (_rgb(tmp_path / "t.png") == _grey([255, 30])).all()


def test_mode_P_with_index_and_alpha_transparency(tmp_path):
    im = Image.fromarray(np.array([[0, 1, 2]], np.uint8), "P")
    im.putpalette([10, 20, 30, 0, 200, 0, 255, 0, 0] + [0] * 759)
    assert _save(im, tmp_path / "a.png")[0] == "P"
    assert (_rgb(tmp_path / "a.png") == [[[10, 20, 30], [0, 200, 0], [255, 0, 0]]]).all()
    _save(im, tmp_path / "i.png", transparency=1)  # palette entry 1 transparent
    assert (_rgb(tmp_path / "i.png") == [[[10, 20, 30], [255, 255, 255], [255, 0, 0]]]).all()
    _save(im, tmp_path / "a2.png", transparency=bytes([255, 255, 51]))  # entry 2 at alpha 0.2
    got = _rgb(tmp_path / "a2.png")[0, 2]
    assert np.abs(got - [255, 204, 204]).max() <= 1  # 0.2 red + 0.8 white


def test_mode_RGB_with_a_transparent_colour(tmp_path):
    im = Image.fromarray(np.array([[[1, 2, 3], [9, 8, 7]]], np.uint8))
    _save(im, tmp_path / "a.png")
    assert (_rgb(tmp_path / "a.png") == [[[1, 2, 3], [9, 8, 7]]]).all()
    assert _save(im, tmp_path / "t.png", transparency=(1, 2, 3))[1]["transparency"] == (1, 2, 3)
    assert (_rgb(tmp_path / "t.png") == [[[255, 255, 255], [9, 8, 7]]]).all()


@pytest.mark.parametrize("fmt", ["png", "tiff", "webp"])
def test_mode_RGBA_is_composited_on_white(tmp_path, fmt):
    im = Image.fromarray(np.array([[[255, 0, 0, 0], [0, 0, 255, 255], [255, 0, 0, 128]]], np.uint8))
    path = tmp_path / f"a.{fmt}"
    assert _save(im, path, **({"lossless": True} if fmt == "webp" else {}))[0] == "RGBA"
    got = _rgb(path)
    assert (got[0, 0] == 255).all() and (got[0, 1] == [0, 0, 255]).all()
    assert np.abs(got[0, 2] - [255, 127, 127]).max() <= 1  # 128/255 red over white


def test_mode_LA_and_PA(tmp_path):
    la = Image.fromarray(np.array([[[100, 128], [100, 255]]], np.uint8), "LA")
    assert _save(la, tmp_path / "la.png")[0] == "LA"
    # 100 * 128/255 + 255 * 127/255 = 177.2
    assert (_rgb(tmp_path / "la.png") == _grey([177, 100])).all()
    pa = Image.new("PA", (2, 1))
    pa.putpalette([0, 0, 200] + [0] * 765)
    pa.putdata([(0, 255), (0, 0)])
    assert _save(pa, tmp_path / "pa.tiff")[0] == "PA"
    assert (_rgb(tmp_path / "pa.tiff") == [[[0, 0, 200], [255, 255, 255]]]).all()


@pytest.mark.parametrize("fmt", ["jpeg", "tiff"])
def test_mode_CMYK(tmp_path, fmt):
    im = Image.new("CMYK", (16, 8), (0, 255, 255, 0))  # red
    im.paste((0, 0, 0, 128), (8, 0, 16, 8))  # half black: grey
    path = tmp_path / f"a.{fmt}"
    assert _save(im, path, **({"quality": 100} if fmt == "jpeg" else {}))[0] == "CMYK"
    got = _rgb(path)
    assert np.abs(got[4, 2] - [255, 0, 0]).max() <= 3
    assert np.abs(got[4, 12] - [127, 127, 127]).max() <= 3


def test_mode_YCbCr(tmp_path):
    y, cb, cr = 81, 90, 240  # ITU-R BT.601 full range, as JPEG: red
    assert _save(Image.new("YCbCr", (2, 1), (y, cb, cr)), tmp_path / "a.tiff")[0] == "YCbCr"
    expected = [y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
                y + 1.772 * (cb - 128)]
    assert np.abs(_rgb(tmp_path / "a.tiff")[0, 0] - np.clip(expected, 0, 255)).max() <= 2


def test_mode_LAB_is_converted_as_colour(tmp_path):
    # PIL holds L* in 0..255 for 0..100 and a*, b* + 128 (the TIFF's signed bytes, shifted).
    lab = Image.new("LAB", (4, 1))
    lab.putdata([(0, 128, 128), (128, 128, 128), (255, 128, 128), (138, 208, 195)])
    assert _save(lab, tmp_path / "a.tiff")[0] == "LAB"
    got = _rgb(tmp_path / "a.tiff")
    # Neutral greys: L* = 50.2 is sRGB 119 (CIE, with the sRGB transfer curve).
    assert np.abs(got[0, :3] - np.array([0, 119, 255])[:, None]).max() <= 2
    r, g, b = got[0, 3]  # L* 54, a* +80, b* +67: saturated red
    assert r > 220 and g < 60 and b < 60


def test_mode_HSV_which_no_format_stores():
    from convnets.data.images import to_rgb

    hsv = Image.new("HSV", (3, 1))
    hsv.putdata([(0, 255, 255), (85, 255, 255), (0, 0, 128)])
    assert (np.asarray(to_rgb(hsv)).astype(int)
            == [[[255, 0, 0], [0, 255, 0], [128, 128, 128]]]).all()


SIXTEEN = [0, 257, 32896, 40000, 65535]  # / 257 rounded: 0, 1, 128, 156, 255


def _sixteen(mode: str) -> Image.Image:
    if mode == "I":
        return Image.fromarray(np.array([SIXTEEN], np.int32))
    order = ">" if mode == "I;16B" else "<" if mode in ("I;16", "I;16L") else "="
    return Image.frombytes(mode, (len(SIXTEEN), 1), np.array(SIXTEEN, f"{order}u2").tobytes())


@pytest.mark.parametrize("mode,fmt", [("I;16", "png"), ("I;16", "tiff"), ("I;16B", "tiff"),
                                      ("I;16B", "png"), ("I;16L", "tiff"), ("I", "tiff"),
                                      ("I", "pgm")])
def test_16_bit_grey_is_scaled_by_257(tmp_path, mode, fmt):
    im = _sixteen(mode)
    assert np.asarray(im).astype(int).tolist() == [SIXTEEN]
    held, _ = _save(im, tmp_path / f"a.{fmt}")
    assert held.startswith("I")
    assert (_rgb(tmp_path / f"a.{fmt}") == _grey([0, 1, 128, 156, 255])).all()


def test_16_bit_grey_png_with_transparency_is_not_white(tmp_path):
    arr = np.full((8, 8), 40000, np.uint16)
    arr[0, 0] = 0
    _save(Image.fromarray(arr), tmp_path / "a.png", transparency=0)
    got = _rgb(tmp_path / "a.png")
    assert (got[0, 0] == 255).all()  # the transparent pixel, on white
    assert (got.reshape(-1, 3)[1:] == 156).all()  # 40000 / 257


def test_32_bit_integer_values_outside_16_bits_are_clipped(tmp_path):
    _save(Image.fromarray(np.array([[-5, 70000, 514]], np.int32)), tmp_path / "a.tiff")
    assert (_rgb(tmp_path / "a.tiff") == _grey([0, 255, 2])).all()


def test_mode_I_16N_which_no_format_stores():
    from convnets.data.images import to_rgb

    im = _sixteen("I;16N")
    assert im.mode == "I;16N" and (np.asarray(to_rgb(im)).astype(int) == _grey([0, 1, 128, 156, 255])).all()


@pytest.mark.parametrize("fmt", ["tiff", "pfm"])
def test_float_images_are_read_as_0_to_1(tmp_path, fmt):
    values = np.array([[0.0, 0.5, 1.0, 0.2, 2.0, -1.0, np.nan]], np.float32)
    held, _ = _save(Image.fromarray(values), tmp_path / f"a.{fmt}",
                    **({"format": "PPM"} if fmt == "pfm" else {}))
    assert held == "F"
    # rint: 127.5 -> 128, 51.0 -> 51; above 1 and below 0 clipped; NaN -> 0
    assert (_rgb(tmp_path / f"a.{fmt}") == _grey([0, 128, 255, 51, 255, 0, 0])).all()


def test_premultiplied_modes_which_no_format_stores():
    from convnets.data.images import to_rgb

    la = Image.frombytes("La", (1, 1), bytes([64, 128]))  # premultiplied: 64 + (255 - 128)
    assert np.asarray(to_rgb(la)).tolist() == [[[191, 191, 191]]]
    rgba = Image.frombytes("RGBa", (1, 1), bytes([64, 0, 10, 128]))
    assert np.asarray(to_rgb(rgba)).tolist() == [[[191, 127, 137]]]


# --- frames, orientation ----------------------------------------------------------------------

def test_first_frame_of_an_animated_gif_and_a_multipage_tiff(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((250, 0, 0), (0, 250, 0), (0, 0, 250))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=50)
    frames[0].save(tmp_path / "a.tiff", save_all=True, append_images=frames[1:])
    for name in ("a.gif", "a.tiff"):
        with Image.open(tmp_path / name) as im:
            assert im.n_frames == 3
        got = _rgb(tmp_path / name)
        assert got[..., 0].min() > 200 and got[..., 1:].max() < 30, name


def test_exif_orientation_makes_phone_photos_upright(tmp_path):
    im = Image.new("RGB", (64, 32), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 32, 32))  # left half red, as the sensor saw it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    im.save(tmp_path / "phone.jpg", quality=95, exif=exif.tobytes())
    got = _rgb(tmp_path / "phone.jpg")
    assert got.shape == (64, 32, 3)  # upright: portrait
    assert got[8, 16, 0] > 200 and got[8, 16, 2] < 50  # the red half is now on top
    assert got[56, 16, 2] > 200 and got[56, 16, 0] < 50


def test_sources_may_be_bytes_or_files(tmp_path):
    Image.new("RGB", (3, 2), (1, 2, 3)).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    assert np.asarray(load_rgb(data)).tolist() == [[[1, 2, 3]] * 3] * 2
    with open(tmp_path / "a.png", "rb") as f:
        assert load_rgb(f).size == (3, 2)


# --- bounded memory ---------------------------------------------------------------------------

def _png_bomb(path, w: int, h: int) -> None:
    """A black grey PNG of w x h pixels, compressed row by row (a few KB on disk)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    z = zlib.compressobj(9)
    row = b"\0" * (w + 1)
    idat = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_a_header_past_pils_own_refusal_is_one_line_with_our_numbers():
    # 20000 x 20000 is past twice PIL's limit, so PIL refuses it at open, before our own
    # check sees the size; the message still gives the count and the limit in force.
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0))
              + chunk(b"IEND", b""))
    with pytest.raises(BadImageError) as info:
        load_rgb(header, max_pixels=1_000_000)
    assert str(info.value) == ("image data: 400,000,000 pixels, more than the limit of "
                               "1,000,000 (refused before decoding)")
    assert info.value.reason == "too large"


def test_a_huge_png_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    _png_bomb(path, 12000, 12000)
    assert path.stat().st_size < 200_000
    with pytest.raises(BadImageError) as info:
        load_rgb(str(path))
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and "12000 x 12000 pixels" in msg
    assert info.value.reason == "too large"
    # The memory a decode takes, measured in a fresh process (its peak resident size).
    code = ("import resource, sys; from convnets.data import load_rgb, BadImageError\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "try: load_rgb(sys.argv[1])\nexcept BadImageError: pass\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, check=True)
    assert int(out.stdout) < 50_000  # KB; decoding it would take 144 MB at least


def test_the_limit_is_an_option_and_a_module_default(tmp_path):
    from convnets.data.images import DEFAULT_MAX_PIXELS, get_max_pixels, set_max_pixels

    Image.new("L", (100, 100), 9).save(tmp_path / "a.png")
    with pytest.raises(BadImageError, match="100 x 100 pixels, more than the limit of 9,999"):
        load_rgb(str(tmp_path / "a.png"), max_pixels=9_999)
    assert load_rgb(str(tmp_path / "a.png"), max_pixels=10_000).size == (100, 100)
    try:
        set_max_pixels(5_000)
        with pytest.raises(BadImageError, match="limit of 5,000"):
            load_rgb(str(tmp_path / "a.png"))
    finally:
        set_max_pixels(None)
    assert get_max_pixels() == DEFAULT_MAX_PIXELS


def test_a_large_jpeg_is_decoded_at_a_reduced_scale(tmp_path):
    Image.new("RGB", (4000, 3000), (20, 200, 40)).save(tmp_path / "big.jpg", quality=90)
    im = load_rgb(str(tmp_path / "big.jpg"), max_pixels=1_000_000)
    assert im.size == (1000, 750)  # 1/4: the first DCT scale under the limit
    assert np.abs(np.asarray(im).astype(int).mean((0, 1)) - [20, 200, 40]).max() <= 3
    with pytest.raises(BadImageError, match="4000 x 3000 pixels"):
        load_rgb(str(tmp_path / "big.jpg"), max_pixels=100_000)  # 1/8 is still 187,500


@pytest.mark.parametrize("size", [(20000, 1), (1, 20000)])
@pytest.mark.parametrize("preset", ["imagenet", "alexnet", "full"])
def test_an_extreme_aspect_ratio_is_resized_in_bounded_memory(tmp_path, size, preset):
    from convnets.data.transforms import ShorterSideResize, build_transform

    Image.new("RGB", size, (200, 10, 10)).save(tmp_path / "thin.png")
    img = load_rgb(str(tmp_path / "thin.png"))
    resize = ShorterSideResize(256)
    resized = resize(torch.zeros(3, *size[::-1], dtype=torch.uint8))
    assert sorted(resized.shape[-2:]) == [256, 256 * 16]  # not 256 x 5,120,000
    t = build_transform(preset, train=False, input_size=(3, 224, 224), mean=[0.5] * 3, std=[0.25] * 3)
    x = t(img)
    assert x.shape[-2:] in ((224, 224), (256, 256))
    assert torch.allclose(x[0], torch.tensor((200 / 255 - 0.5) / 0.25), atol=1e-5)


def test_a_normal_image_resizes_exactly_as_before():
    from torchvision.transforms import v2

    from convnets.data.transforms import ShorterSideResize

    img = torch.randint(0, 256, (3, 90, 1000), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ShorterSideResize(64)(img), v2.Resize(64, antialias=True)(img))  # 11:1


# --- every kind of bad file: one line that names it and says what is wrong ---------------------

def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
        buf, "JPEG", quality=90)
    return buf.getvalue()


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


BAD = {
    "empty.jpg": (lambda p: p.write_bytes(b""), "empty"),
    "text.jpg": (lambda p: p.write_text("not an image\n"), "not an image"),
    "truncated.jpg": (lambda p: p.write_bytes(_jpeg_bytes()[:2000]), "truncated or corrupt"),
    "truncated.png": (lambda p: p.write_bytes(_png_bytes()[:3000]), "truncated or corrupt"),
    "header.png": (lambda p: p.write_bytes(_png_bytes()[:20]), "corrupt"),
    "folder.jpg": (lambda p: p.mkdir(), "a directory"),
    "pipe.jpg": (lambda p: os.mkfifo(p), "not a regular file"),
    "missing.jpg": (lambda p: None, "no such file"),
}


@pytest.mark.parametrize("load", [load_rgb, load_rgb_tensor])
@pytest.mark.parametrize("name", sorted(BAD))
def test_every_bad_file_gives_one_line_naming_it(tmp_path, name, load):
    make, reason = BAD[name]
    path = tmp_path / name
    make(path)
    with pytest.raises(BadImageError) as info, within_seconds(10):
        load(str(path))
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{path}: ")
    assert info.value.reason == reason and reason in msg


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_a_file_without_read_permission(tmp_path):
    path = tmp_path / "locked.png"
    Image.new("L", (2, 2)).save(path)
    path.chmod(0)
    with pytest.raises(BadImageError, match="permission denied"):
        load_rgb(str(path))
