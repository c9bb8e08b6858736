"""Data sources as registered plugins, and the one protocol every dataset satisfies."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from convnets.cli import main
from convnets.data import LabelledDataset, open_dataset, register_source
from convnets.data import sources
from convnets.data.arrays import ArrayDataset
from convnets.data.sources import Opened

KW = dict(input_size=(3, 8, 8), train_transform=False)


def _cifar10(root):
    root.mkdir()
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        (root / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [f"c{k}".encode() for k in range(10)]}
    (root / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return root


def _folder(root):
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (4, 4), (i, i, i)).save(root / c / f"{i}.png")
    return root


def test_every_source_and_subset_satisfies_the_protocol(tmp_path):
    specs = ["digits", "digits:0-4", "synthetic:8:3", f"cifar10:{_cifar10(tmp_path / 'c')}",
             f"folder:{_folder(tmp_path / 'f')}", f"{tmp_path / 'f'}"]
    for spec in specs:
        for split in ("train", "test"):
            ds = open_dataset(spec, split, **KW)
            assert isinstance(ds, LabelledDataset), spec
            assert ds.num_classes == len(ds.classes) and len(ds.targets) == len(ds)
            assert ds.bad_files() == 0 and ds.bad_file_report() == [] and ds.preset is not None
            sub = ds.restricted_to([1])
            assert isinstance(sub, LabelledDataset) and sub.classes == [ds.classes[1]]
            assert set(sub.targets) <= {0} and (sub.preset, sub.mean) == (ds.preset, ds.mean)


def test_a_registered_source_is_opened_by_its_prefix_and_named_in_the_help():
    seen = []

    def open_ones(request):
        seen.append((request.arg, request.split, request.input_size))
        images = torch.ones(4, 1, 2, 2)
        return Opened(ArrayDataset(images, [0, 1, 0, 1], ["x", "y"]), "none", (0.5,), (0.25,))

    register_source("ones", open_ones, usage="ones:WHAT")
    try:
        ds = open_dataset("ones:anything", "test", **KW)
        assert seen == [("anything", "val", (3, 8, 8))]
        assert (ds.preset, ds.mean, ds.std, ds.classes) == ("none", (0.5,), (0.25,), ["x", "y"])
        assert torch.allclose(ds[0][0], torch.full((3, 8, 8), 2.0))  # (1 - 0.5) / 0.25
        assert "ones:WHAT" in sources.spec_help()
        with pytest.raises(ValueError, match="ones: expected ones:DIR"):
            open_dataset("ones", "train", **KW)
        with pytest.raises(ValueError, match="registered already"):
            register_source("ones", open_ones)
    finally:
        del sources._SOURCES["ones"]


def test_a_file_given_as_a_folder_is_said_to_be_a_file(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a data set")
    for spec in (f"folder:{notes}", f"imagenet:{notes}", f"cifar10:{notes}"):
        with pytest.raises(ValueError) as err:
            open_dataset(spec, "train", **KW)
        message = str(err.value)
        assert "is a file, not a folder" in message and "no such directory" not in message
    assert main(["export-images", f"folder:{notes}", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "notes.txt: is a file, not a folder" in err and err.count("\n") == 1


def test_a_dataset_made_in_python_has_the_abilities_it_defines():
    from torch.utils.data import TensorDataset

    from convnets.data.protocol import HasNumClasses, ReportsBadFiles
    from convnets.engine.train import _num_classes

    plain = TensorDataset(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]))

    class Sized(TensorDataset):
        num_classes = 4

    sized = Sized(torch.zeros(2, 1, 4, 4), torch.tensor([0, 3]))
    assert not isinstance(plain, (HasNumClasses, ReportsBadFiles, LabelledDataset))
    assert isinstance(sized, HasNumClasses) and not isinstance(sized, LabelledDataset)
    assert (_num_classes(plain, 10), _num_classes(sized, 10)) == (10, 4)
