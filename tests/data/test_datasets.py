"""Datasets from small files written in each real format."""
from __future__ import annotations

import os
import pickle
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader

from convnets.data import BadImageError, load_rgb, open_dataset
from convnets.data.datasets import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD

# --- digits ------------------------------------------------------------------------------


def test_digits_split_sizes_classes_and_shapes():
    train = open_dataset(None, "train", input_size=(3, 32, 32), train_transform=False)
    test = open_dataset("digits", "test", input_size=(3, 32, 32), train_transform=False)
    assert (len(train), len(test)) == (1437, 360)
    assert train.classes == [str(k) for k in range(10)] and test.num_classes == 10
    # stratified: each class holds its share of the 360 test images (178..183 per class of 1,797)
    counts = np.bincount(test.targets, minlength=10)
    assert counts.sum() == 360 and counts.min() >= 35 and counts.max() <= 37
    x, y = test[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and isinstance(y, int)
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])  # grey replicated to RGB
    x1, _ = open_dataset(None, "test", input_size=(1, 28, 28), train_transform=False)[0]
    assert x1.shape == (1, 28, 28)


def test_digits_split_is_a_partition_and_deterministic():
    from sklearn.datasets import load_digits

    a = open_dataset(None, "train", input_size=(3, 16, 16), train_transform=False)
    b = open_dataset(None, "train", input_size=(3, 16, 16), train_transform=False)
    test = open_dataset(None, "test", input_size=(3, 16, 16), train_transform=False)
    assert a.targets == b.targets and torch.equal(a[100][0], b[100][0])
    raw = torch.cat([a.images, test.images]).flatten(1)
    ref = torch.from_numpy(load_digits().images.astype(np.float32) / 16).flatten(1)
    # same multiset of images: sort rows lexicographically via a stable key
    key = lambda t: sorted(map(tuple, t.tolist()))  # noqa: E731
    assert key(raw) == key(ref)


def test_digits_normalised_with_training_statistics():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    tr, te = train_test_split(np.arange(1797), test_size=360, random_state=0, stratify=d.target)
    imgs = torch.from_numpy(d.images / 16.0).unsqueeze(1)
    up = F.interpolate(imgs[np.sort(tr)], size=(20, 20), mode="bilinear", align_corners=False)
    mean, std = up.mean().item(), up.std(unbiased=False).item()
    test = open_dataset(None, "test", input_size=(3, 20, 20), train_transform=False)
    i = 7
    k = int(np.sort(te)[i])
    expected = (F.interpolate(imgs[k:k + 1], size=(20, 20), mode="bilinear", align_corners=False)[0]
                - mean) / std
    x, y = test[i]
    assert y == d.target[k]
    assert torch.allclose(x[0].double(), expected[0], atol=1e-5)


def test_digits_train_transform_augments_and_keeps_shape():
    ds = open_dataset(None, "train", input_size=(3, 32, 32), train_transform=True)
    torch.manual_seed(0)
    a, b = ds[3][0], ds[3][0]
    assert a.shape == (3, 32, 32) and not torch.equal(a, b)


# --- synthetic -----------------------------------------------------------------------------


def test_synthetic_is_deterministic_and_sized():
    a = open_dataset("synthetic:12:3", "train", input_size=(3, 8, 8), train_transform=True)
    b = open_dataset("synthetic:12:3", "train", input_size=(3, 8, 8), train_transform=True)
    t = open_dataset("synthetic:12:3", "test", input_size=(3, 8, 8), train_transform=False)
    assert len(a) == 12 and a.classes == ["0", "1", "2"] and set(a.targets) == {0, 1, 2}
    assert torch.equal(a[5][0], b[5][0]) and a[5][1] == b[5][1] and a[5][0].shape == (3, 8, 8)
    assert not torch.equal(a[5][0], t[5][0])
    assert len(open_dataset("synthetic", "train", input_size=(3, 8, 8), train_transform=True)) == 1024
    with pytest.raises(ValueError, match="synthetic"):
        open_dataset("synthetic:x", "train", input_size=(3, 8, 8), train_transform=True)


# --- CIFAR ------------------------------------------------------------------------------


def _dump(obj, path, py2_names=False):
    blob = pickle.dumps(obj, protocol=2)
    if py2_names:  # the module path numpy 1.x (and the official 2009 files) record
        blob = blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path.write_bytes(blob)


def _cifar10(root, n=3):
    rng = np.random.default_rng(0)
    root.mkdir()
    batches = {}
    for k, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        batches[name] = (data, labels)
        _dump({b"batch_label": name.encode(), b"labels": labels, b"data": data,
               b"filenames": [b"x.png"] * n}, root / name, py2_names=k % 2 == 0)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
             b"ship", b"truck"]
    _dump({b"num_cases_per_batch": n, b"label_names": names, b"num_vis": 3072}, root / "batches.meta")
    return batches


def test_cifar10_reads_official_layout(tmp_path):
    batches = _cifar10(tmp_path / "c10")
    ds = open_dataset(f"cifar10:{tmp_path / 'c10'}", "train", input_size=(3, 32, 32),
                      train_transform=False)
    assert len(ds) == 15 and ds.num_classes == 10 and ds.classes[1] == "automobile"
    data = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    labels = sum((batches[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert ds.targets == labels
    i = 7
    x, y = ds[i]
    # official layout: 1024 red, then 1024 green, then 1024 blue values, row-major
    rgb = data[i].reshape(3, 32, 32).astype(np.float64) / 255
    expected = (rgb - np.array(CIFAR10_MEAN)[:, None, None]) / np.array(CIFAR10_STD)[:, None, None]
    assert y == labels[i] and x.shape == (3, 32, 32)
    assert np.allclose(x.numpy(), expected, atol=1e-5)
    assert x[0, 0, 1].item() == pytest.approx((data[i][1] / 255 - CIFAR10_MEAN[0]) / CIFAR10_STD[0], abs=1e-5)
    test = open_dataset(f"cifar10:{tmp_path / 'c10'}", "test", input_size=(3, 32, 32),
                        train_transform=True)
    assert test.targets == batches["test_batch"][1] and test[0][0].shape == (3, 32, 32)


def test_cifar100_reads_fine_labels(tmp_path):
    root = tmp_path / "c100"
    root.mkdir()
    rng = np.random.default_rng(1)
    for name, n in (("train", 6), ("test", 4)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = [int(v) for v in rng.integers(0, 100, n)]
        _dump({b"filenames": [b"f"] * n, b"batch_label": b"b", b"fine_labels": fine,
               b"coarse_labels": [f // 5 for f in fine], b"data": data}, root / name)
        if name == "test":
            test_data, test_fine = data, fine
    _dump({b"fine_label_names": [f"c{k}".encode() for k in range(100)],
           b"coarse_label_names": [f"s{k}".encode() for k in range(20)]}, root / "meta")
    ds = open_dataset(f"cifar100:{root}", "test", input_size=(3, 32, 32), train_transform=False)
    assert len(ds) == 4 and ds.num_classes == 100 and ds.classes[42] == "c42"
    assert ds.targets == test_fine
    x, _ = ds[2]
    expected = ((test_data[2].reshape(3, 32, 32) / 255 - np.array(CIFAR100_MEAN)[:, None, None])
                / np.array(CIFAR100_STD)[:, None, None])
    assert np.allclose(x.numpy(), expected, atol=1e-5)
    assert len(open_dataset(f"cifar100:{root}", "train", input_size=(3, 32, 32),
                            train_transform=True)) == 6


def _one_line_error(spec, split="train"):
    with pytest.raises(ValueError) as info:
        open_dataset(spec, split, input_size=(3, 32, 32), train_transform=False)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_cifar_missing_and_malformed_give_one_line(tmp_path):
    msg = _one_line_error(f"cifar10:{tmp_path / 'nope'}")
    assert "no such directory" in msg and "data_batch_1..5" in msg
    _cifar10(tmp_path / "c10")
    os.remove(tmp_path / "c10" / "data_batch_3")
    msg = _one_line_error(f"cifar10:{tmp_path / 'c10'}")
    assert "expected data_batch_1..5, test_batch" in msg and "missing data_batch_3" in msg
    (tmp_path / "c10" / "test_batch").write_text("not a pickle")
    assert "test_batch is not a CIFAR python-version pickle" in _one_line_error(
        f"cifar10:{tmp_path / 'c10'}", "test")
    _dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, tmp_path / "c10" / "test_batch")
    assert "uint8, N x 3072" in _one_line_error(f"cifar10:{tmp_path / 'c10'}", "test")
    assert "CIFAR-100 python version" in _one_line_error(f"cifar100:{tmp_path / 'c10'}")


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_cifar_pickle_cannot_run_code(tmp_path):
    _cifar10(tmp_path / "c10")
    target = tmp_path / "pwned"
    _dump({b"data": _Evil(str(target)), b"labels": []}, tmp_path / "c10" / "test_batch")
    msg = _one_line_error(f"cifar10:{tmp_path / 'c10'}", "test")
    assert "refusing" in msg and not target.exists()


# --- ImageNet --------------------------------------------------------------------------------


def _jpeg(path, color=(200, 30, 30), size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, "JPEG", quality=95)


def test_imagenet_layout(tmp_path):
    root = tmp_path / "ilsvrc"
    for split, n in (("train", 2), ("val", 1)):
        for wnid in ("n01440764", "n01443537", "n09999999"):
            for i in range(n):
                _jpeg(root / split / wnid / f"{wnid}_{i}.JPEG")
    ds = open_dataset(f"imagenet:{root}", "train", input_size=(3, 24, 24), train_transform=True)
    assert ds.classes == ["n01440764", "n01443537", "n09999999"] and len(ds) == 6
    assert ds.targets == [0, 0, 1, 1, 2, 2]
    val = open_dataset(f"imagenet:{root}", "val", input_size=(3, 24, 24), train_transform=False)
    assert val.targets == [0, 1, 2] and val[1][0].shape == (3, 24, 24)
    # a colour JPEG decoded, centre-cropped and normalised with the ImageNet statistics
    assert val[0][0][0].mean().item() == pytest.approx((200 / 255 - 0.485) / 0.229, abs=0.05)


def test_imagenet_maps_1000_wnids_to_names(tmp_path, monkeypatch):
    root = tmp_path / "ilsvrc"
    wnids = [f"n{k:08d}" for k in range(1000)]
    for w in wnids:
        (root / "train" / w).mkdir(parents=True)
        (root / "val" / w).mkdir(parents=True)
    _jpeg(root / "val" / wnids[3] / "a.JPEG")
    fake = types.ModuleType("convnets.models.classes")
    fake.imagenet_classes = lambda: [f"name {k}" for k in range(1000)]
    monkeypatch.setitem(sys.modules, "convnets.models.classes", fake)
    ds = open_dataset(f"imagenet:{root}", "val", input_size=(3, 16, 16), train_transform=False)
    assert ds.num_classes == 1000 and ds.classes[3] == "name 3" and ds.wnids[3] == wnids[3]
    assert ds.targets == [3]


def test_imagenet_errors(tmp_path):
    assert "no such directory" in _one_line_error(f"imagenet:{tmp_path / 'missing'}")
    assert "no train/ folder" in _one_line_error(f"imagenet:{tmp_path}")
    _jpeg(tmp_path / "train" / "n1" / "a.JPEG")
    _jpeg(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG")
    msg = _one_line_error(f"imagenet:{tmp_path}", "val")
    assert "sort them into class folders" in msg and "val/<wnid>/*.JPEG" in msg


# --- image folders with bad files ------------------------------------------------------------


def _bad_folder(root):
    """Two classes; 'a' holds every awkward kind of file, 'b' plain images."""
    a, b = root / "a", root / "b"
    a.mkdir(parents=True)
    b.mkdir()
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    noise.save(a / "1_good.jpg", quality=90)
    blob = (a / "1_good.jpg").read_bytes()
    (a / "2_truncated.jpg").write_bytes(blob[: len(blob) // 2])
    (a / "3_text.jpg").write_text("this is not an image\n")
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(a / "4_cmyk.jpg", quality=100)  # red
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent
    rgba.putpixel((1, 1), (0, 0, 255, 255))  # opaque blue
    rgba.putpixel((2, 2), (255, 0, 0, 128))  # half-transparent red
    rgba.save(a / "5_rgba.png")
    pal = Image.new("P", (8, 8), 1)
    pal.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    pal.save(a / "6_palette.png")
    Image.new("L", (8, 8), 77).save(b / "7_grey.png")
    Image.fromarray(np.full((8, 8), 65535 // 2, np.uint16)).save(b / "8_grey16.png")
    (b / "notes.txt").write_text("ignored: not an image extension")
    return root


def test_folder_converts_every_mode_to_rgb(tmp_path):
    root = _bad_folder(tmp_path / "imgs")
    cmyk = load_rgb(str(root / "a" / "4_cmyk.jpg"))
    assert cmyk.mode == "RGB" and all(abs(v - r) <= 3 for v, r in zip(cmyk.getpixel((4, 4)), (255, 0, 0)))
    rgba = load_rgb(str(root / "a" / "5_rgba.png"))
    assert rgba.getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
    assert rgba.getpixel((1, 1)) == (0, 0, 255)
    assert all(abs(v - r) <= 1 for v, r in zip(rgba.getpixel((2, 2)), (255, 127, 127)))
    assert load_rgb(str(root / "a" / "6_palette.png")).getpixel((0, 0)) == (0, 200, 0)
    assert load_rgb(str(root / "b" / "7_grey.png")).getpixel((3, 3)) == (77, 77, 77)
    assert load_rgb(str(root / "b" / "8_grey16.png")).getpixel((3, 3)) == (127, 127, 127)


def test_folder_skips_counts_and_reports_bad_files_across_workers(tmp_path):
    root = _bad_folder(tmp_path / "imgs")
    ds = open_dataset(str(root), "train", input_size=(3, 16, 16), train_transform=False)
    assert ds.classes == ["a", "b"] and len(ds) == 8  # notes.txt is not listed
    assert ds.targets == [0] * 6 + [1] * 2
    loader = DataLoader(ds, batch_size=3, num_workers=2)
    batches = list(loader)
    xs = torch.cat([x for x, _ in batches])
    ys = torch.cat([y for _, y in batches])
    assert xs.shape == (8, 3, 16, 16) and torch.isfinite(xs).all()
    # the two bad files were replaced by the next readable one (the CMYK image, class a)
    assert ys.tolist() == [0] * 6 + [1] * 2
    assert torch.equal(xs[1], xs[3]) and torch.equal(xs[2], xs[3])
    assert ds.bad_files() == 2  # flags set in worker processes, read in this one
    assert sorted(os.path.basename(p) for p in ds.bad_file_names()) == ["2_truncated.jpg", "3_text.jpg"]
    ds.reset_bad_files()
    assert ds.bad_files() == 0
    ds[2]
    assert ds.bad_files() == 1


def test_folder_fail_fast_names_the_file(tmp_path):
    root = _bad_folder(tmp_path / "imgs")
    ds = open_dataset(f"folder:{root}", "train", input_size=(3, 16, 16), train_transform=False,
                      fail_fast=True)
    ds[0]
    with pytest.raises(BadImageError, match="2_truncated.jpg"):
        ds[1]


def test_folder_with_split_subfolders(tmp_path):
    _jpeg(tmp_path / "d" / "train" / "cat" / "1.jpg")
    _jpeg(tmp_path / "d" / "train" / "dog" / "2.jpg")
    _jpeg(tmp_path / "d" / "test" / "dog" / "3.png")
    tr = open_dataset(f"folder:{tmp_path / 'd'}", "train", input_size=(3, 8, 8), train_transform=True)
    te = open_dataset(str(tmp_path / "d"), "val", input_size=(3, 8, 8), train_transform=False)
    assert tr.classes == te.classes == ["cat", "dog"]
    assert tr.targets == [0, 1] and te.targets == [1]  # class index from train/, not test/
    _jpeg(tmp_path / "d" / "test" / "emu" / "4.jpg")
    assert "not among the 2 training classes" in _one_line_error(f"folder:{tmp_path / 'd'}", "test")


def test_folder_and_spec_errors(tmp_path):
    assert "no such directory" in _one_line_error(f"folder:{tmp_path / 'missing'}")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    assert "no image files" in _one_line_error(f"folder:{tmp_path / 'empty'}")
    assert "unknown dataset 'mnist'" in _one_line_error("mnist")
    assert "unknown split" in _one_line_error("digits", "dev")
    with pytest.raises(ValueError, match="input_size"):
        open_dataset(None, "train", input_size=(2, 8, 8), train_transform=False)


def test_flat_folder_holds_out_a_tenth_of_each_class(tmp_path):
    for c, n in (("cat", 25), ("dog", 12)):
        (tmp_path / "f" / c).mkdir(parents=True)
        for i in range(n):
            Image.new("L", (4, 4), i).save(tmp_path / "f" / c / f"{i:02d}.png")
    kw = dict(input_size=(3, 4, 4), train_transform=False)
    train = open_dataset(f"folder:{tmp_path / 'f'}", "train", **kw)
    test = open_dataset(f"folder:{tmp_path / 'f'}", "test", **kw)
    assert (len(train), len(test)) == (34, 3)  # cat: 09, 19 held out; dog: 09
    held = {os.path.basename(p) for p, _ in test.samples}
    assert held == {"09.png", "19.png"} and not held & {os.path.basename(p) for p, _ in train.samples}
    assert sorted(test.targets) == [0, 0, 1]
