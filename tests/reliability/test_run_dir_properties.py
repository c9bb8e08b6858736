"""Property tests of the parsers of a run directory's files: whatever JSON a config.json,
inference.json or metrics.jsonl holds, reading it gives a valid object or one
RunDirError (a ConvnetsError the command line prints as one line), never another
exception."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convnets.engine.config import TrainConfig, load_config
from convnets.engine.inference_spec import InferenceSpec, load_inference_spec
from convnets.engine.logs import METRIC_KEYS, read_history
from convnets.errors import ConvnetsError

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# JSON values of every kind, small.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)

DEFAULT = TrainConfig()
CONFIG_KEYS = [f.name for f in dataclasses.fields(TrainConfig)]
SPEC_KEYS = [f.name for f in dataclasses.fields(InferenceSpec)]


def _write(text: str) -> str:
    fd, path = tempfile.mkstemp(suffix=".json")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def _object_over(keys):
    """A dict over real keys, each either its valid value or any JSON value."""
    return st.dictionaries(st.sampled_from(keys), JSON, max_size=len(keys))


@SETTINGS
@given(st.one_of(_object_over(CONFIG_KEYS), JSON))
def test_any_config_json_reads_or_is_one_error(raw):
    path = _write(json.dumps({**dataclasses.asdict(TrainConfig()), **raw})
                  if isinstance(raw, dict) else json.dumps(raw))
    try:
        cfg = load_config(path)
    except ConvnetsError as err:
        assert "\n" not in str(err)
    else:
        # What was read is a configuration a run can use: every field of its default's type
        # (a float field may hold an integer; a bool is not a number) ...
        for f in dataclasses.fields(TrainConfig):
            value, default = getattr(cfg, f.name), getattr(DEFAULT, f.name)
            if value is None or default is None:
                continue
            if isinstance(default, bool) or isinstance(value, bool):
                assert type(value) is type(default), (f.name, value)
            elif isinstance(default, float):
                assert isinstance(value, (int, float)) and math.isfinite(value), (f.name, value)
            else:
                assert isinstance(value, type(default)), (f.name, value)
        # ... and it saves and reads back the same.
        again = _write(json.dumps(dataclasses.asdict(cfg)))
        assert load_config(again) == cfg
        os.unlink(again)
    finally:
        os.unlink(path)


@SETTINGS
@given(st.one_of(_object_over(SPEC_KEYS), JSON))
def test_any_inference_json_reads_or_is_one_error(raw):
    path = _write(json.dumps(raw))
    try:
        spec = load_inference_spec(path)
    except ConvnetsError as err:
        assert "\n" not in str(err)
    else:
        assert len(spec.classes) >= 1 and len(spec.mean) == len(spec.std)
        assert all(isinstance(c, str) for c in spec.classes)
    finally:
        os.unlink(path)


# Rows with a valid epoch most of the time, so that the other keys' values are exercised.
NUMBER = st.floats() | st.integers(0, 100)
ROW = st.builds(lambda epoch, rest: {"epoch": epoch, **rest},
                st.integers(1, 5) | JSON,
                st.dictionaries(st.sampled_from(list(METRIC_KEYS[1:]) + ["train_top1", "test_top1"]),
                                NUMBER | JSON, max_size=len(METRIC_KEYS)))


@SETTINGS
@given(st.lists(st.one_of(ROW.map(json.dumps), st.text(max_size=20)), max_size=5))
def test_any_metrics_file_reads_or_is_one_error(lines):
    path = _write("\n".join(line.replace("\n", " ") for line in lines) + "\n")
    try:
        rows = read_history(path)
    except ConvnetsError as err:
        assert "\n" not in str(err)
    else:
        for row in rows:
            assert isinstance(row["epoch"], int) and row["epoch"] >= 1
            assert set(METRIC_KEYS) <= set(row)
            for key in METRIC_KEYS:  # numbers, NaN where not measured (best_epoch: None)
                if key == "best_epoch" and row[key] is None:
                    continue
                assert isinstance(row[key], (int, float)) and not isinstance(row[key], bool), (key, row)
            best = row["best_test_top1_err"]
            assert best is None or isinstance(best, (int, float))
    finally:
        os.unlink(path)


# The three JSON files of a run (config.json, inference.json, the checkpoint record) are
# read by one function: a file that is not UTF-8, or cannot be read at all, is one line too.
def _readers(tmp_path):
    from convnets.engine.checkpoint import COMMIT, latest_checkpoint

    return [(lambda p: load_config(p), tmp_path / "config.json"),
            (lambda p: load_inference_spec(p), tmp_path / "inference.json"),
            (lambda p: latest_checkpoint(tmp_path), tmp_path / COMMIT)]


def test_a_json_file_that_is_not_utf8_is_one_error(tmp_path):
    for read, path in _readers(tmp_path):
        path.write_bytes(b'{"model": "\xff"}')
        try:
            read(str(path))
        except ConvnetsError as err:
            assert str(err).startswith(f"{path} is not valid JSON: ") and "\n" not in str(err)
        else:
            raise AssertionError(f"{path} was read")


def test_a_json_path_that_cannot_be_read_is_one_error(tmp_path):
    for read, path in _readers(tmp_path):
        path.mkdir()
        try:
            read(str(path))
        except ConvnetsError as err:
            assert str(err) == f"{path} cannot be read: Is a directory"
        else:
            raise AssertionError(f"{path} was read")
        path.rmdir()
