"""CIFAR python-version files: sizes checked against the file before anything is
allocated, labels and arrays checked, one line naming the file for every fault."""
from __future__ import annotations

import pickle
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from convnets.data import open_dataset
from convnets.errors import DataError

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct

NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
         b"ship", b"truck"]


def _cifar10(root, test_batch: dict | None = None, n: int = 4):
    """The official layout; ``test_batch`` replaces the test file's dict."""
    root.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, n)], b"batch_label": b"x"}
        if name == "test_batch" and test_batch is not None:
            batch = test_batch
        (root / name).write_bytes(pickle.dumps(batch, protocol=2))
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": NAMES}, protocol=2))
    return f"cifar10:{root}"


def _refusal(spec: str) -> str:
    with pytest.raises(DataError) as info:
        open_dataset(spec, "test", input_size=(3, 32, 32), train_transform=False)
    msg = str(info.value)
    assert "\n" not in msg and "test_batch" in msg
    return msg


class _Declared:
    """Pickles as numpy's own array reconstruction, but with a declared shape and no data."""

    def __init__(self, shape):
        self.shape = shape

    def __reduce__(self):
        return (_reconstruct, (np.ndarray, self.shape, b"B"))


class _Called:
    """Pickles as a direct call of numpy.ndarray(shape): an allocation of the shape."""

    def __init__(self, shape):
        self.shape = shape

    def __reduce__(self):
        return (np.ndarray, (self.shape, np.uint8))


@pytest.mark.parametrize("lie", [_Declared, _Called])
def test_a_small_file_cannot_declare_ten_thousand_images(tmp_path, lie):
    spec = _cifar10(tmp_path / "c", {b"data": lie((10000, 3072)), b"labels": [3] * 10000})
    assert (tmp_path / "c" / "test_batch").stat().st_size < 25_000
    tracemalloc.start()
    try:
        msg = _refusal(spec)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "not a CIFAR python-version pickle" in msg
    assert peak < 5_000_000  # the declared 30,720,000 bytes were never allocated


CASES = {
    "float_data": ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]},
                   "it holds a float32 array of shape (2, 3072)"),
    "short_rows": ({b"data": np.zeros((2, 3071), np.uint8), b"labels": [0, 1]},
                   "of shape (2, 3071)"),
    "images_3d": ({b"data": np.zeros((2, 3, 1024), np.uint8), b"labels": [0, 1]},
                  "of shape (2, 3, 1024)"),
    "list_data": ({b"data": [[0] * 3072], b"labels": [0]}, "it holds a list"),
    "no_data": ({b"labels": [0]}, "it holds a NoneType"),
    "few_labels": ({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1]},
                   "as 3 integer labels"),
    "no_labels": ({b"data": np.zeros((2, 3072), np.uint8)}, "b'labels' as 2 integer labels"),
    "float_labels": ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0.5, 1.0]},
                     "integer labels in 0..9"),
    "text_labels": ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [b"cat", b"dog"]},
                    "integer labels"),
    "bool_labels": ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [True, False]},
                    "integer labels"),
    "label_range": ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]},
                    "labels in 0..9"),
    "array_labels": ({b"data": np.zeros((2, 3072), np.uint8), b"labels": np.array([0.0, 1.0])},
                     "integer labels"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_malformed_batch_is_one_line_naming_the_file(tmp_path, case):
    batch, expected = CASES[case]
    assert expected in _refusal(_cifar10(tmp_path / "c", batch))


def test_labels_as_an_integer_array_are_read(tmp_path):
    data = np.arange(2 * 3072, dtype=np.uint64).astype(np.uint8).reshape(2, 3072)
    spec = _cifar10(tmp_path / "c", {b"data": data, b"labels": np.array([7, 2], np.int32)})
    ds = open_dataset(spec, "test", input_size=(3, 32, 32), train_transform=False)
    assert ds.targets == [7, 2] and np.array_equal(ds.images.numpy().reshape(2, -1), data)


def test_a_truncated_batch_is_one_line(tmp_path):
    spec = _cifar10(tmp_path / "c")
    blob = (tmp_path / "c" / "test_batch").read_bytes()
    (tmp_path / "c" / "test_batch").write_bytes(blob[: len(blob) // 2])
    assert "not a CIFAR python-version pickle" in _refusal(spec)


@settings(max_examples=25, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                      min_size=1, max_size=6))
def test_property_a_damaged_batch_loads_or_is_one_line(tmp_path_factory, edits):
    root = tmp_path_factory.mktemp("c")
    spec = _cifar10(root / "c")
    data = bytearray((root / "c" / "test_batch").read_bytes())
    for where, value in edits:
        data[int(where * len(data))] = value
    (root / "c" / "test_batch").write_bytes(bytes(data))
    try:
        ds = open_dataset(spec, "test", input_size=(3, 32, 32), train_transform=False)
    except DataError as err:
        assert "\n" not in str(err) and "test_batch" in str(err)
    else:
        assert len(ds) == 4 and all(0 <= t < 10 for t in ds.targets)
