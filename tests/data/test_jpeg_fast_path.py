"""load_rgb_tensor: plain JPEGs are decoded straight into a tensor with exactly the pixels
of the PIL path; every other file takes the PIL path; datasets with our transforms use it."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from convnets.data import images, open_dataset
from convnets.data.images import BadImageError, load_rgb, load_rgb_tensor


def _photo(w: int, h: int, seed: int = 0) -> Image.Image:
    """Smooth colour noise with grain: compresses like a photograph."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    big = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), dtype=np.int16)
    return Image.fromarray(np.clip(big + rng.integers(-12, 13, big.shape), 0, 255).astype(np.uint8))


@pytest.fixture
def calls(monkeypatch):
    """Counts the fast decoder's calls."""
    real = images._jpeg_decoder()
    if real is None:
        pytest.fail("TorchCodec's decode_jpeg does not load; it is a dependency of the package")
    count = {"n": 0}

    def counting(*args, **kwargs):
        count["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(images, "_jpeg_decoder", lambda: counting)
    return count


def _pil_tensor(path, **kw) -> torch.Tensor:
    return torch.from_numpy(np.asarray(load_rgb(str(path), **kw)).copy()).permute(2, 0, 1)


PLAIN = {  # file name -> how it is written: all take the fast path
    "q90-420.jpg": lambda p: _photo(500, 375).save(p, quality=90),
    "q95-444.jpg": lambda p: _photo(375, 500, 1).save(p, quality=95, subsampling=0),
    "progressive.jpg": lambda p: _photo(333, 250, 2).save(p, quality=85, progressive=True),
    "odd-size.jpg": lambda p: _photo(33, 17, 3).save(p, quality=75),
    "grey.jpg": lambda p: _photo(120, 80, 4).convert("L").save(p, quality=90),
    "exif-upright.jpg": lambda p: _photo(64, 48, 5).save(p, exif=_exif(1)),
    "named.png": lambda p: _photo(40, 30, 6).save(p, format="JPEG"),  # content, not name
}


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_plain_jpegs_decode_straight_to_the_pil_paths_pixels(tmp_path, calls, name):
    path = tmp_path / name
    PLAIN[name](path)
    got = load_rgb_tensor(path)
    assert calls["n"] == 1
    assert got.dtype == torch.uint8 and got.shape[0] == 3
    assert torch.equal(got, _pil_tensor(path))


OTHER = {  # file name -> (how it is written, load options): all take the PIL path
    "rotated.jpg": (lambda p: _photo(64, 48).save(p, exif=_exif(6)), {}),
    "cmyk.jpg": (lambda p: _photo(64, 48).convert("CMYK").save(p, quality=90), {}),
    "large.jpg": (lambda p: _photo(400, 300).save(p, quality=90), {"max_pixels": 200 * 150}),
    "photo.png": (lambda p: _photo(64, 48).save(p), {}),
}


@pytest.mark.parametrize("name", sorted(OTHER))
def test_other_images_take_the_pil_path_with_its_handling(tmp_path, calls, name):
    make, kw = OTHER[name]
    path = tmp_path / name
    make(path)
    got = load_rgb_tensor(path, **kw)
    assert calls["n"] == 0
    assert torch.equal(got, _pil_tensor(path, **kw))
    if name == "rotated.jpg":
        assert got.shape[1:] == (64, 48)  # upright
    if name == "large.jpg":
        assert got.shape[1:] == (150, 200)  # decoded at half scale


def test_a_damaged_jpeg_is_named_by_the_pil_path(tmp_path, calls):
    buf = io.BytesIO()
    _photo(200, 150).save(buf, "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(BadImageError) as info:
        load_rgb_tensor(path)
    assert info.value.reason == "truncated or corrupt" and str(path) in str(info.value)
    assert calls["n"] == 1  # tried, refused, then PIL said why


def test_a_file_over_the_whole_file_size_is_read_by_pil_as_it_decodes(tmp_path, calls, monkeypatch):
    path = tmp_path / "big.jpg"
    _photo(64, 48).save(path, quality=90)
    monkeypatch.setattr(images, "_WHOLE_FILE_BYTES", path.stat().st_size - 1)
    assert torch.equal(load_rgb_tensor(path), _pil_tensor(path))
    assert calls["n"] == 0


def test_without_the_fast_decoder_every_file_takes_the_pil_path(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "_jpeg_decoder", lambda: None)
    path = tmp_path / "a.jpg"
    _photo(50, 40).save(path, quality=90)
    assert torch.equal(load_rgb_tensor(path), _pil_tensor(path))


def test_a_folder_dataset_with_our_transforms_decodes_to_tensors(tmp_path, calls):
    for k, cls in enumerate(("cat", "dog")):
        (tmp_path / cls).mkdir()
        for i in range(10):
            _photo(90 + 10 * i, 70, seed=10 * k + i).save(tmp_path / cls / f"{i}.jpg", quality=90)
    ds = open_dataset(f"folder:{tmp_path}", "test", input_size=(3, 64, 64), train_transform=False)
    assert ds.transform.takes_uint8_tensors
    for i in range(len(ds)):
        x, label = ds[i]
        path, expected_label = ds.samples[i]
        assert label == expected_label
        assert torch.equal(x, ds.transform(load_rgb(path)))  # the PIL image, same transform
    assert calls["n"] == len(ds)
    ds.transform = lambda im: im  # a transform of the user's own gets PIL images
    assert isinstance(ds[0][0], Image.Image)
