"""Weights files a user may hand in: every format read by one path, every refusal one line
that names the file and says what is wrong, and nothing cast or executed silently."""
from __future__ import annotations

import io
import json
import os
import struct
import tempfile
import zipfile

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings, strategies as st
from safetensors.torch import save as safetensors_bytes, save_file
from torch import nn

from convnets.engine import checkpoint as ckpt
from convnets.errors import CheckpointError, ConvnetsError, NotFoundError, WeightsError
from convnets.models.registry import load_weights, read_state_dict

FAST = settings(max_examples=30, deadline=5000, suppress_health_check=[HealthCheck.too_slow])


class Net(nn.Module):
    """Floating parameters, floating BN statistics and BN's integer counter."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)


def _state(**changes) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    state = {k: v.clone() for k, v in Net().state_dict().items()}
    state["bn.running_var"].uniform_(0.5, 2.0)
    state["bn.num_batches_tracked"].fill_(7)
    state.update(changes)
    return state


# Every format PyTorch users meet: safetensors, torch.save's zip archive and its pre-1.6 format.
def _write(path, state, fmt: str) -> str:
    if fmt == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path, _use_new_zipfile_serialization=fmt == "zip")
    return str(path)


FORMATS = ["safetensors", "zip", "legacy"]


def _refusal(path, model=None) -> str:
    with pytest.raises(WeightsError) as info:
        if model is None:
            read_state_dict(path)
        else:
            load_weights(model, path)
    msg = str(info.value)
    assert "\n" not in msg and "\x1b" not in msg
    assert os.fspath(path) in msg
    assert not msg.rstrip().endswith(":")  # it says what is wrong
    return msg


# --- dtypes ------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool])
def test_float_parameter_stored_as_integers_or_booleans_is_refused(tmp_path, fmt, dtype):
    bad = torch.ones(2, 4, dtype=dtype)
    path = _write(tmp_path / "w.bin", _state(**{"fc.weight": bad}), fmt)
    model = Net()
    before = model.fc.weight.detach().clone()
    msg = _refusal(path, model)
    assert "'fc.weight'" in msg and str(dtype) in msg and "refusing" in msg
    assert torch.equal(model.fc.weight, before)  # nothing was loaded


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_precisions_are_cast(tmp_path, dtype):
    state = _state()
    path = _write(tmp_path / "w.safetensors",
                  {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()},
                  "safetensors")
    model = load_weights(Net(), path)
    assert model.fc.weight.dtype == torch.float32
    torch.testing.assert_close(model.fc.weight, state["fc.weight"].to(dtype).float(), rtol=0, atol=0)


def test_integer_buffers_stay_integers(tmp_path):
    model = load_weights(Net(), _write(tmp_path / "w.safetensors", _state(), "safetensors"))
    assert model.bn.num_batches_tracked.dtype == torch.int64 and int(model.bn.num_batches_tracked) == 7
    path = _write(tmp_path / "f.safetensors",
                  _state(**{"bn.num_batches_tracked": torch.tensor(7.5)}), "safetensors")
    assert "'bn.num_batches_tracked' holds floating-point" in _refusal(path, Net())


# --- one path after reading ------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_ddp_module_prefix_is_stripped_in_every_format(tmp_path, fmt):
    state = _state()
    path = _write(tmp_path / "ddp.weights", {f"module.{k}": v for k, v in state.items()}, fmt)
    model = load_weights(Net(), path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_format_is_read_from_the_content_not_the_name(tmp_path, fmt):
    state = _state()
    path = _write(tmp_path / "weights.pth", state, fmt)  # e.g. safetensors named .pth
    got = read_state_dict(path)
    assert got.keys() == state.keys() and all(torch.equal(got[k], state[k]) for k in state)


def test_wrappers_are_removed_at_any_depth(tmp_path):
    state = _state()
    path = tmp_path / "wrapped.pth"
    torch.save({"epoch": 3, "model": {"state_dict": state}}, path)
    assert read_state_dict(path).keys() == state.keys()


# --- refusals say what is wrong ----------------------------------------------------------------

class _Mkdir:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_a_pickle_with_code_is_refused_for_safety_without_unsafe_advice(tmp_path):
    target = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"fc.weight": _Mkdir(str(target))}, path)
    msg = _refusal(path)
    assert "refused for safety" in msg and "mkdir" in msg
    assert "weights_only" not in msg and "likely succeed" not in msg and "trust" not in msg
    assert not target.exists()


def _zip_bomb(path):
    """A torch.save archive re-zipped with its tensor record inflated to 64 MB of zeros."""
    buf = io.BytesIO()
    torch.save({"w": torch.ones(4)}, buf)
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            big = info.filename.endswith("data/0")
            dst.writestr(info.filename, b"\0" * (64 << 20) if big else src.read(info.filename))


def _safetensors_with_header(header: dict, data: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


CASES = {
    "empty": (lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
    "text": (lambda p: p.write_text("hello, not weights\n"), "is not a weights file"),
    "zip_truncated": (lambda p: p.write_bytes(_pth_bytes()[:300]), "truncated or corrupt"),
    "st_truncated": (lambda p: p.write_bytes(_st_bytes()[:-5]), "is truncated"),
    "st_header_too_long": (lambda p: p.write_bytes(struct.pack("<Q", 1 << 62) + b"{}"),
                           "header declares 4,611,686,018,427,387,904 bytes"),
    "st_header_past_end": (lambda p: p.write_bytes(struct.pack("<Q", 5000) + b"{}"), "is truncated"),
    "st_lying_size": (lambda p: p.write_bytes(_safetensors_with_header(
        {"w": {"dtype": "F32", "shape": [100000, 100000], "data_offsets": [0, 40_000_000_000]}},
        b"\0" * 16)), "declares 40,000,000,000 bytes"),
    "st_shape_mismatch": (lambda p: p.write_bytes(_safetensors_with_header(
        {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8)),
        "not a valid safetensors file"),
    "st_bad_json": (lambda p: p.write_bytes(struct.pack("<Q", 3) + b"{x}"), "header is not JSON"),
    "zip_bomb": (_zip_bomb, "zip records declare 67,109,"),
    "list": (lambda p: torch.save([torch.ones(1)], p), "holds a list, not a state dict"),
    "nested": (lambda p: torch.save({"fc": {"weight": torch.ones(1)}}, p), "'fc' holds a nested dict"),
    "int_key": (lambda p: torch.save({3: torch.ones(1)}, p), "key 3 (int) is not a tensor name"),
    "number": (lambda p: torch.save({"w": torch.ones(1), "lr": 0.1}, p), "'lr' holds a float"),
    "no_tensors": (lambda p: torch.save({}, p), "holds no tensors"),
    "meta": (lambda p: torch.save({"w": torch.empty(2, device="meta")}, p), "not a dense tensor"),
    "twice": (lambda p: save_file({"w": torch.ones(1), "module.w": torch.ones(1)}, str(p)),
              "'w' twice"),
}


def _pth_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save(_state(), buf)
    return buf.getvalue()


def _st_bytes() -> bytes:
    return safetensors_bytes(_state())


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_refusal_is_one_line_that_names_the_file_and_the_fault(tmp_path, case):
    make, expected = CASES[case]
    path = tmp_path / f"{case}.pth"
    make(path)
    assert expected in _refusal(path)


def test_a_directory_and_a_missing_file_are_named(tmp_path):
    assert "is not a file" in _refusal(tmp_path)
    with pytest.raises(WeightsError, match="not found"):
        read_state_dict(tmp_path / "missing.safetensors")


def test_a_missing_weights_file_is_a_file_not_found_error_like_a_missing_run(tmp_path):
    # A missing path is a FileNotFoundError everywhere, and still a WeightsError here.
    with pytest.raises(FileNotFoundError, match="weights file not found") as info:
        load_weights(Net(), tmp_path / "missing.pth")
    assert isinstance(info.value, WeightsError) and isinstance(info.value, NotFoundError)
    assert isinstance(info.value, ConvnetsError)  # one line at the command line


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, value):
    state = _state()
    state["bn.running_var"][2] = value
    path = _write(tmp_path / "w.safetensors", state, "safetensors")
    model = Net()
    msg = _refusal(path, model)
    assert "'bn.running_var'" in msg and "1 NaN or infinite value of 4" in msg
    assert torch.equal(model.bn.running_var, torch.ones(4))  # nothing was loaded


def test_a_wrong_shape_is_refused_in_every_format(tmp_path):
    for fmt in FORMATS:
        path = _write(tmp_path / f"w.{fmt}", _state(**{"fc.bias": torch.zeros(3)}), fmt)
        assert "'fc.bias' has shape (3,)" in _refusal(path, Net())


# --- checkpoints read their weights the same way --------------------------------------------

def test_a_damaged_or_foreign_checkpoint_gives_one_line(tmp_path):
    model = Net()
    ckpt.save_checkpoint(tmp_path, model=model, epoch=1, step=1)
    weights = tmp_path / "checkpoints" / "epoch-0001" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="is truncated"):
        ckpt.load_checkpoint(tmp_path, model=Net())
    ckpt.save_checkpoint(tmp_path, model=model, epoch=2, step=2)
    other = nn.Sequential(nn.Linear(4, 2))
    with pytest.raises(CheckpointError) as info:
        ckpt.load_checkpoint(tmp_path, model=other)
    assert "\n" not in str(info.value) and "lack tensor '0.weight'" in str(info.value)


# --- properties ------------------------------------------------------------------------------

_names = st.lists(st.from_regex(r"[a-z]{1,6}(\.[a-z0-9]{1,4}){0,2}", fullmatch=True),
                  min_size=1, max_size=5, unique=True)
_dtypes = st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64])
_shapes = st.lists(st.integers(0, 4), max_size=3)


@st.composite
def _state_dicts(draw):
    return {name: (torch.randn(draw(_shapes)) * 10).to(draw(_dtypes)) for name in draw(_names)}


def _tmp(data: bytes) -> str:
    fd, path = tempfile.mkstemp(suffix=".weights")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _bytes(state: dict, fmt: str) -> bytes:
    if fmt == "safetensors":
        return safetensors_bytes({k: v.contiguous() for k, v in state.items()})
    buf = io.BytesIO()
    torch.save(state, buf, _use_new_zipfile_serialization=fmt == "zip")
    return buf.getvalue()


@FAST
@given(state=_state_dicts(), fmt=st.sampled_from(FORMATS), ddp=st.booleans(),
       wrapper=st.sampled_from([None, "state_dict", "model"]))
def test_property_every_format_reads_back_the_same_tensors(state, fmt, ddp, wrapper):
    saved = {f"module.{k}" if ddp else k: v for k, v in state.items()}
    if wrapper and fmt != "safetensors":
        saved = {wrapper: saved, "epoch": 1}
    path = _tmp(_bytes(saved, fmt))
    try:
        got = read_state_dict(path)
    finally:
        os.unlink(path)
    assert got.keys() == state.keys()
    for k, v in state.items():
        assert got[k].dtype == v.dtype and torch.equal(got[k], v), k


def _read_or_refuse(data: bytes) -> None:
    """The property every file must have: a dict of named tensors, or one WeightsError line
    naming the file; never another exception."""
    path = _tmp(data)
    try:
        got = read_state_dict(path)
    except WeightsError as err:
        assert "\n" not in str(err) and path in str(err)
    else:
        assert all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in got.items())
    finally:
        os.unlink(path)


@FAST
@given(state=_state_dicts(), fmt=st.sampled_from(FORMATS), cut=st.floats(0, 1, exclude_max=True))
def test_property_a_truncated_file_is_refused(state, fmt, cut):
    data = _bytes(state, fmt)
    path = _tmp(data[: int(cut * len(data))])
    try:
        with pytest.raises(WeightsError) as info:
            read_state_dict(path)
        assert "\n" not in str(info.value) and path in str(info.value)
    finally:
        os.unlink(path)


@FAST
@given(state=_state_dicts(), fmt=st.sampled_from(FORMATS),
       edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                      min_size=1, max_size=8))
@example(state={"a": torch.tensor([])}, fmt="zip", edits=[(0.689453125, 1)])  # zip name not UTF-8
def test_property_a_damaged_file_is_read_or_refused_in_one_line(state, fmt, edits):
    data = bytearray(_bytes(state, fmt))
    for where, value in edits:
        data[int(where * len(data))] = value
    _read_or_refuse(bytes(data))


_header_entry = st.fixed_dictionaries({
    "dtype": st.sampled_from(["F32", "F16", "BF16", "I64", "BOOL", "U8", "X9", 3]),
    "shape": st.lists(st.integers(-1, 1 << 40), max_size=3),
    "data_offsets": st.lists(st.integers(-1, 1 << 40), min_size=0, max_size=3),
})


@FAST
@given(header=st.dictionaries(st.text(max_size=5), _header_entry | st.integers(), max_size=3),
       data=st.binary(max_size=64))
def test_property_a_lying_safetensors_header_is_refused_in_one_line(header, data):
    _read_or_refuse(_safetensors_with_header(header, data))
