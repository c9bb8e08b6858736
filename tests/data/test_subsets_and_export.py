"""Class subsets (digits:0-4, --classes), what datasets record for inference, and
export-images."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from convnets.cli import main
from convnets.data import open_dataset
from convnets.data.export import export_images
from convnets.data.subsets import parse_class_selection, select_classes
from convnets.errors import DataError

SIZE = (3, 8, 8)


def _digits(spec="digits", split="train", **kw):
    return open_dataset(spec, split, input_size=SIZE, train_transform=False, **kw)


# --- selections ----------------------------------------------------------------------------

def test_selections_are_names_indices_and_inclusive_ranges():
    digits = [str(k) for k in range(10)]
    assert parse_class_selection("0-4", digits) == [0, 1, 2, 3, 4]
    assert parse_class_selection("9,5,7", digits) == [5, 7, 9]  # kept in the dataset's order
    assert parse_class_selection("1-2, 8", digits) == [1, 2, 8]
    pets = ["cat", "dog", "emu"]
    assert parse_class_selection("emu,cat", pets) == [0, 2]
    assert parse_class_selection("1-2", pets) == [1, 2]
    # a name is matched before an index: class "1" here is index 0
    assert parse_class_selection("1", ["1", "0"]) == [0]


@pytest.mark.parametrize("text, message", [
    ("0-10", "not within 0-9"), ("12", "not within 0-9"), ("4-2", "not within 0-9"),
    ("cat", "neither a class name"), ("1,,2", "empty class"), ("0-4,3", "selected twice"),
])
def test_bad_selections_are_one_line_data_errors(text, message):
    with pytest.raises(DataError, match=message) as info:
        parse_class_selection(text, [str(k) for k in range(10)])
    assert "\n" not in str(info.value)


def test_digits_subset_keeps_names_relabels_and_keeps_the_images():
    full, sub = _digits(), _digits("digits:5-9")
    assert sub.classes == ["5", "6", "7", "8", "9"] and sub.num_classes == 5
    kept = [i for i, t in enumerate(full.targets) if t >= 5]
    assert len(sub) == len(kept) and sub.targets == [full.targets[i] - 5 for i in kept]
    x, y = sub[10]
    assert y == full.targets[kept[10]] - 5 and torch.equal(x, full[kept[10]][0])
    # the normalisation is the dataset's own (all ten digits), as the full dataset's
    assert (sub.preset, sub.mean, sub.std) == (full.preset, full.mean, full.std)
    odd = _digits("digits:1,3,5,7,9", "test")
    assert odd.classes == ["1", "3", "5", "7", "9"] and set(odd.targets) == {0, 1, 2, 3, 4}


def test_train_and_test_subsets_partition_the_selected_digits():
    train, test = _digits("digits:0-4"), _digits("digits:0-4", "test")
    seen = {tuple(train.raw_image(i).flatten().tolist()) for i in range(len(train))}
    assert not any(tuple(test.raw_image(i).flatten().tolist()) in seen for i in range(len(test)))
    assert len(train) + len(test) == sum(1 for t in _load_digits_targets() if t < 5)


def _load_digits_targets():
    from sklearn.datasets import load_digits

    return load_digits().target


def test_folder_subset_replaces_bad_files_within_the_subset(tmp_path):
    for c in ("a", "b", "c"):
        (tmp_path / c).mkdir()
        Image.new("L", (4, 4), 10).save(tmp_path / c / "0.png")
    (tmp_path / "b" / "1.png").write_bytes(b"not a png")
    ds = select_classes(open_dataset(str(tmp_path), "train", input_size=SIZE,
                                     train_transform=False), "b,c")
    assert ds.classes == ["b", "c"] and ds.targets == [0, 0, 1]
    # the unreadable b/1.png is replaced by the next file of the subset (c/0.png), whose
    # label is in range; the full folder's next file would be of another class
    assert [ds[i][1] for i in range(3)] == [0, 1, 1] and ds.bad_files() == 1


def test_datasets_record_their_preset_and_normalisation():
    d = _digits()
    assert d.preset == "digits" and len(d.mean) == len(d.std) == 1  # grey data
    s = open_dataset("synthetic:8", "test", input_size=SIZE, train_transform=False)
    assert (s.preset, s.mean, s.std) == ("none", (0.0,) * 3, (1.0,) * 3)
    # another network's normalisation replaces the data's own, and is what the images get
    other = _digits(normalisation=((0.5,), (0.25,)))
    assert (other.mean, other.std) == ((0.5,), (0.25,))
    raw = torch.nn.functional.interpolate(d.raw_image(3)[None], size=SIZE[1:], mode="bilinear",
                                          align_corners=False)[0]
    torch.testing.assert_close(other[3][0], ((raw - 0.5) / 0.25).expand(3, -1, -1))


# --- export-images ---------------------------------------------------------------------------

def test_export_writes_the_test_split_as_an_image_folder(tmp_path):
    out = tmp_path / "digits"
    counts = export_images("digits:3,8", str(out))
    test = _digits("digits:3,8", "test")
    assert counts == {"3": test.targets.count(0), "8": test.targets.count(1)}
    assert sorted(os.listdir(out)) == ["3", "8"]
    # read back as an image folder (both of its splits): every image, the same classes
    kw = dict(input_size=SIZE, train_transform=False)
    back = [open_dataset(f"folder:{out}", split, **kw) for split in ("train", "test")]
    assert back[0].classes == ["3", "8"] and sum(map(len, back)) == len(test)
    # and the same pixels (0..16 -> 0..255 grey)
    first = sorted(os.listdir(out / "3"))[0]
    img = Image.open(out / "3" / first)
    assert img.mode == "L" and img.size == (8, 8)
    i = int(first.split(".")[0])
    expected = (test.raw_image(i)[0] * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(np.asarray(img), expected)


def test_export_per_class_and_refusals(tmp_path, capsys):
    assert main(["export-images", "digits", str(tmp_path / "few"), "--per-class", "2",
                 "--split", "train"]) == 0
    assert "wrote 20 images of the train split in 10 class folders" in capsys.readouterr().out
    assert all(len(os.listdir(tmp_path / "few" / c)) == 2 for c in os.listdir(tmp_path / "few"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep me")
    for argv, message in [
        (["export-images", "digits", str(tmp_path / "full")], "not an empty folder"),
        (["export-images", "synthetic:8", str(tmp_path / "s")], "random tensors, not images"),
        (["export-images", "digits", str(tmp_path / "p"), "--per-class", "0"], "at least 1"),
        (["export-images", "digits:0-12", str(tmp_path / "q")], "not within 0-9"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert (tmp_path / "full" / "mine.txt").read_text() == "keep me"
