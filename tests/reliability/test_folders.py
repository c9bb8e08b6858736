"""Image folders as users hand them in: special files, links, names from other systems, and
bad files named (on the console, in bad_files.txt, summed over processes) rather than
only counted."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image
from torch.utils.data import DataLoader

from convnets.cli import main
from convnets.data import open_dataset
from convnets.engine import distributed as ddp
from convnets.engine.config import TrainConfig
from convnets.engine.train import fit
from helpers import rendezvous, within_seconds

KW = dict(input_size=(3, 8, 8), train_transform=False)


def _png(path, value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (value, value, value)).save(path)


def _images(ds) -> list[str]:
    return [os.path.relpath(p, ds.root) for p, _ in ds.samples]


def test_a_named_pipe_with_an_image_name_is_not_read(tmp_path):
    _png(tmp_path / "d" / "cat" / "1.png")
    os.mkfifo(tmp_path / "d" / "cat" / "2.png")
    _png(tmp_path / "d" / "dog" / "3.png")
    with within_seconds(20):
        ds = open_dataset(str(tmp_path / "d"), "train", **KW)
        assert _images(ds) == ["cat/1.png", "dog/3.png"]
        assert len(list(DataLoader(ds, batch_size=2))) == 1 and ds.bad_files() == 0


def test_a_link_to_its_own_folder_is_walked_once(tmp_path):
    root = tmp_path / "d"
    _png(root / "cat" / "1.png")
    os.symlink(".", root / "cat" / "again")
    os.symlink("..", root / "cat" / "up")
    _png(root / "dog" / "2.png")
    with within_seconds(20):  # followed without limit, these links never end
        ds = open_dataset(str(root), "train", **KW)
    assert _images(ds) == ["cat/1.png", "dog/2.png"]


def test_links_are_followed_only_inside_the_data_root(tmp_path):
    root = tmp_path / "d"
    _png(root / "cat" / "1.png")
    _png(root / "dog" / "2.png")
    _png(root / "shared" / "extra" / "3.png")  # a folder of the data set, linked from dog/
    os.symlink(root / "shared" / "extra", root / "dog" / "extra")
    _png(tmp_path / "elsewhere" / "4.png")  # outside the data set
    os.symlink(tmp_path / "elsewhere", root / "cat" / "outside")
    os.symlink(tmp_path / "elsewhere" / "4.png", root / "cat" / "5.png")  # a link to one file
    ds = open_dataset(f"folder:{root}", "train", **KW)
    assert ds.classes == ["cat", "dog", "shared"]
    assert _images(ds) == ["cat/1.png", "cat/5.png", "dog/2.png", "dog/extra/3.png",
                           "shared/extra/3.png"]


def test_a_class_folder_may_be_a_link_to_another_disk(tmp_path):
    _png(tmp_path / "big" / "n01" / "a.png")
    _png(tmp_path / "big" / "n01" / "sub" / "b.png")
    os.symlink(tmp_path / "big" / "n01" / "sub", tmp_path / "big" / "n01" / "again")
    (tmp_path / "subset").mkdir()
    os.symlink(tmp_path / "big" / "n01", tmp_path / "subset" / "n01")
    ds = open_dataset(str(tmp_path / "subset"), "train", **KW)
    assert _images(ds) == ["n01/a.png", "n01/again/b.png"]  # sub/ was reached via again/ first


def test_a_folder_named_like_an_image_is_a_folder(tmp_path):
    _png(tmp_path / "d" / "cat" / "x.jpg" / "inner.png")
    _png(tmp_path / "d" / "cat" / "y.png")
    ds = open_dataset(str(tmp_path / "d"), "train", **KW)
    assert _images(ds) == ["cat/y.png", "cat/x.jpg/inner.png"]
    assert ds.bad_files() == 0 and len(list(DataLoader(ds, batch_size=2))) == 1


def test_names_that_are_not_utf8_are_read_and_printable(tmp_path, capsys):
    root = os.fsencode(tmp_path / "d")
    cls = os.path.join(root, b"caf\xe9")  # Latin-1, as written by another system
    os.makedirs(cls)
    Image.new("RGB", (8, 8), (9, 9, 9)).save(os.fsdecode(os.path.join(cls, b"\xff1.png")))
    with open(os.path.join(cls, b"\xfe2.png"), "wb") as f:
        f.write(b"broken")
    ds = open_dataset(os.fsdecode(root), "train", **KW)
    assert ds.classes == ["caf\\xe9"] and len(ds) == 2
    ds.classes[0].encode("utf-8")  # prints on any console
    assert torch.allclose(ds[0][0], ds[1][0])  # the broken file replaced by the readable one
    (path, reason), = ds.bad_file_report()
    assert path.endswith("caf\\xe9/\\xfe2.png") and reason == "not an image"
    print(path)


def _bad_folder(root):
    _png(root / "a" / "0.png")
    (root / "a" / "1.png").write_bytes(b"")
    _png(root / "a" / "2.png")
    (root / "a" / "3.jpg").write_text("not an image")
    _png(root / "b" / "4.png")
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "b" / "5.png")
    (root / "b" / "5.png").write_bytes((root / "b" / "5.png").read_bytes()[:1500])
    for i in range(6, 12):
        _png(root / "b" / f"{i}.png", value=10 * i)
    return root


def test_bad_files_are_named_with_their_reasons_across_workers(tmp_path):
    ds = open_dataset(str(_bad_folder(tmp_path / "d")), "train", **KW)
    list(DataLoader(ds, batch_size=4, num_workers=2))
    assert sorted((os.path.basename(p), r) for p, r in ds.bad_file_report()) == [
        ("1.png", "empty"), ("3.jpg", "not an image"), ("5.png", "truncated or corrupt")]


def _cfg(data, **kw):
    return TrainConfig(model="resnet20", data=data, epochs=1, batch_size=4, lr=0.01, device="cpu",
                       input_size=[3, 8, 8], **kw)


def test_training_names_bad_files_on_the_console_and_in_the_run(tmp_path):
    root = tmp_path / "d"
    _bad_folder(root / "train")
    _png(root / "val" / "a" / "t.png")
    (root / "val" / "b" / "u.png").parent.mkdir(parents=True)
    (root / "val" / "b" / "u.png").write_bytes(b"\x89PNG\r\n")  # a test image, bad too
    lines: list[str] = []
    fit(_cfg(f"folder:{root}"), str(tmp_path / "run"), log=lines.append, progress=False)
    listed = (tmp_path / "run" / "bad_files.txt").read_text().splitlines()
    train = root / "train"
    assert [line.split("\t") for line in listed] == [
        [str(train / "a" / "1.png"), "empty"], [str(train / "a" / "3.jpg"), "not an image"],
        [str(train / "b" / "5.png"), "truncated or corrupt"], [str(root / "val" / "b" / "u.png"), "not an image"]]
    text = "\n".join(lines)
    assert "epoch 1: skipped 4 unreadable image files" in text and "bad_files.txt" in text
    for name in ("1.png  (empty)", "3.jpg  (not an image)", "5.png  (truncated or corrupt)"):
        assert name in text


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_folder_of_unreadable_images_is_one_line_with_or_without_workers(tmp_path, capsys, workers):
    for c in ("a", "b"):
        for i in range(12):
            (tmp_path / "d" / c).mkdir(parents=True, exist_ok=True)
            (tmp_path / "d" / c / f"{i}.jpg").write_text("not an image")
    code = main(["train", "resnet20", "--data", f"folder:{tmp_path / 'd'}", "--epochs", "1",
                 "--batch-size", "4", "--input-size", "8", "--device", "cpu", "--workers", workers,
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "none of the 22 image files is readable" in err  # 11 a class: 1 in 10 held out and "not an image" in err
    assert "Traceback" not in err and "worker" not in err


# --- data parallelism: every process's bad files count ------------------------------------------

def _rank(rank, world, master, root, out):
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), **master)
    from convnets.engine.train import _gather_bad_files

    env = ddp.setup(torch.device("cpu"))
    try:
        ds = open_dataset(root, "train", **KW)
        loader = ddp.make_loader(ds, batch_size=2, env=env, train=False, workers=0, seed=0)
        list(loader)
        mine = ds.bad_file_report()
        every = _gather_bad_files(ds, env)
        torch.save({"mine": mine, "every": every, "after": ds.bad_files()}, f"{out}.{rank}")
    finally:
        ddp.cleanup()


def test_two_processes_report_the_bad_files_of_both(tmp_path):
    root = tmp_path / "d"
    for i in range(8):  # process 0 reads 0, 2, 4, 6; process 1 reads 1, 3, 5, 7
        _png(root / "c" / f"{i}.png")
    (root / "c" / "1.png").write_text("bad")
    (root / "c" / "4.png").write_bytes(b"")
    out = str(tmp_path / "report")
    with rendezvous(2) as master:
        mp.spawn(_rank, args=(2, master, str(root), out), nprocs=2, join=True)
    got = [torch.load(f"{out}.{r}", weights_only=False) for r in range(2)]
    assert [[os.path.basename(p) for p, _ in g["mine"]] for g in got] == [["4.png"], ["1.png"]]
    expected = [(str(root / "c" / "1.png"), "not an image"), (str(root / "c" / "4.png"), "empty")]
    assert got[0]["every"] == got[1]["every"] == expected
    assert got[0]["after"] == got[1]["after"] == 0  # counting starts afresh


def test_max_pixels_skips_larger_images_and_names_them(tmp_path):
    root = tmp_path / "d"
    for cls in ("a", "b"):
        for k in range(3):
            _png(root / "train" / cls / f"small{k}.png")
        _png(root / "val" / cls / "small.png")
    big = root / "train" / "a" / "big.png"
    Image.new("RGB", (40, 40), (50, 50, 50)).save(big)  # 1600 pixels
    fit(_cfg(f"folder:{root}", max_pixels=1000), str(tmp_path / "run"), log=lambda _: None,
        progress=False)
    listed = (tmp_path / "run" / "bad_files.txt").read_text().splitlines()
    assert listed == [f"{big}\ttoo large"]
    # Without the bound the same file is read.
    fit(_cfg(f"folder:{root}"), str(tmp_path / "run2"), log=lambda _: None, progress=False)
    assert not (tmp_path / "run2" / "bad_files.txt").exists()


def test_predict_walks_a_folder_by_the_training_rule(tmp_path):
    from convnets.inference.predict import find_images

    root = tmp_path / "d"
    _png(root / "1.png")
    os.mkfifo(root / "2.png")  # os.walk listed it, and reading it blocks forever
    os.symlink("missing.png", root / "3.png")  # a broken link is no image file
    _png(root / "sub" / "4.png")
    os.symlink(root / "sub", root / "linked")  # inside the folder: followed, once
    os.symlink(".", root / "sub" / "again")
    _png(tmp_path / "elsewhere" / "5.png")
    os.symlink(tmp_path / "elsewhere", root / "outside")  # out of the folder: not followed
    os.symlink(tmp_path / "elsewhere" / "5.png", root / "6.png")  # a link to one file
    with within_seconds(20):
        found = [os.path.relpath(p, root) for p in find_images(str(root))]
    assert found == ["1.png", "6.png", "linked/4.png"]


def test_a_class_selection_keeps_the_pixel_limit(tmp_path):
    from convnets.data.image_folder import ImageFolderDataset

    samples = [(str(tmp_path / f"{k}.png"), k % 2) for k in range(4)]
    dataset = ImageFolderDataset(samples, ["a", "b"], max_pixels=1000)
    assert dataset.restricted_to([1]).max_pixels == 1000
