"""A checkpoint called good is good, a committed epoch keeps its metrics row, a killed save
leaves nothing behind for long, and a checkpoint is validated whole before anything is
restored from it."""
import json
import os

import pytest
import torch
from torch.utils.data import Dataset, Subset

from convnets.data import open_dataset
from convnets.engine import checkpoint as ckpt
from convnets.engine.config import TrainConfig
from convnets.engine.logs import read_history
from convnets.engine.epoch import NonFiniteError
from convnets.engine.train import fit
from convnets.errors import CheckpointError

SIZE = (3, 16, 16)


@pytest.fixture(scope="module")
def digits():
    train = open_dataset(None, "train", input_size=SIZE, train_transform=False)
    test = open_dataset(None, "test", input_size=SIZE, train_transform=False)
    return Subset(train, range(16)), Subset(test, range(16))


def _cfg(**kw):
    return TrainConfig(**{**dict(model="resnet20", epochs=3, batch_size=8, lr=0.01, device="cpu",
                                 workers=0, input_size=list(SIZE), warmup_epochs=0.0), **kw})


def _quiet(_):
    pass


class _HugeAfter(Dataset):
    """Images scaled by 1e30 after ``n`` reads: the loss stays finite (batch norm
    normalises each batch by its own statistics) while the running variances overflow."""

    def __init__(self, base, n):
        self.base, self.n, self.reads = base, n, 0

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        self.reads += 1
        x, y = self.base[i]
        return (x * 1e30 if self.reads > self.n else x), y


def test_non_finite_batch_norm_statistics_are_never_committed(tmp_path, digits):
    train, test = digits
    run = tmp_path / "run"
    with pytest.raises(NonFiniteError) as err:
        fit(_cfg(), str(run), datasets=(_HugeAfter(train, 16), test), log=_quiet)
    message = str(err.value)
    assert "after epoch 2" in message and "not finite" in message
    assert "last good checkpoint (epoch 1)" in message and "\n" not in message
    assert ckpt.latest_checkpoint(run)["epoch"] == 1
    weights = ckpt.load_weights_file(run / "checkpoints/epoch-0001/model.safetensors")
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    rows = read_history(str(run / "metrics.jsonl"))
    assert [r["epoch"] for r in rows] == [1]


def test_a_committed_epoch_always_has_its_metrics_row(tmp_path, digits, monkeypatch):
    run = tmp_path / "run"
    real = ckpt.save_checkpoint

    def killed_right_after_the_commit(*args, **kw):
        real(*args, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save_checkpoint", killed_right_after_the_commit)
    with pytest.raises(KeyboardInterrupt):
        fit(_cfg(), str(run), datasets=digits, log=_quiet)
    monkeypatch.setattr(ckpt, "save_checkpoint", real)
    assert ckpt.latest_checkpoint(run)["epoch"] == 1
    rows = [json.loads(line) for line in open(run / "metrics.jsonl")]
    assert [r["epoch"] for r in rows] == [1]
    # The resumed run goes on from there with one row per epoch.
    result = fit(_cfg(), str(run), resume=True, datasets=digits, log=_quiet)
    assert [r["epoch"] for r in result["history"]] == [1, 2, 3]


def test_leftovers_of_a_killed_save_are_removed_on_resume(tmp_path, digits):
    run = tmp_path / "run"
    fit(_cfg(), str(run), until_epoch=1, datasets=digits, log=_quiet)
    stale = [run / ".tmp-abc-metrics.jsonl", run / "checkpoints/epoch-0001/.tmp-x-state.pt"]
    for path in stale:
        path.write_bytes(b"\0" * 1000)
    (run / "checkpoints/epoch-0002").mkdir()
    (run / "checkpoints/epoch-0002/model.safetensors").write_bytes(b"partial")
    fit(_cfg(), str(run), resume=True, until_epoch=2, datasets=digits, log=_quiet)
    assert not any(p.exists() for p in stale)
    assert sorted(os.listdir(run / "checkpoints")) == ["epoch-0002"]
    assert ckpt.latest_checkpoint(run)["epoch"] == 2


def test_a_corrupt_file_restores_nothing(tmp_path, digits):
    run = tmp_path / "run"
    fit(_cfg(ema=0.9), str(run), until_epoch=1, datasets=digits, log=_quiet)
    (run / "checkpoints/epoch-0001/ema.safetensors").write_bytes(b"not safetensors")

    import convnets
    from torch.optim.swa_utils import AveragedModel

    model = convnets.create_model("resnet20", num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ema = AveragedModel(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    with pytest.raises(CheckpointError, match="ema.safetensors"):
        ckpt.load_checkpoint(run, model=model, optimizer=optimizer, ema=ema)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert optimizer.state_dict()["state"] == {}
    assert torch.equal(torch.get_rng_state(), rng)

    # A weights file of another model is refused before anything is restored, too.
    other = convnets.create_model("resnet32", num_classes=10)
    with pytest.raises(CheckpointError, match="lack tensor .layer1.3.conv1.weight"):
        ckpt.load_checkpoint(run, model=other)


@pytest.mark.parametrize("content, message", [
    ('{"epoch": 1, "lr": 0.1}\nnot json\n', "line 2, is not JSON"),
    ('[1, 2]\n', "line 1, is not a metrics row"),
    ('{"lr": 0.1}\n', "line 1, is not a metrics row"),
])
def test_a_tampered_metrics_file_is_one_line(tmp_path, content, message):
    from convnets.errors import RunDirError

    path = tmp_path / "metrics.jsonl"
    path.write_text(content)
    with pytest.raises(RunDirError, match=message):
        read_history(str(path))


def test_a_metrics_row_lacking_a_key_still_resumes_and_plots(tmp_path, digits):
    run = tmp_path / "run"
    fit(_cfg(), str(run), until_epoch=1, datasets=digits, log=_quiet)
    rows = [json.loads(line) for line in open(run / "metrics.jsonl")]
    del rows[0]["test_top5_err"], rows[0]["train_loss"]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = fit(_cfg(), str(run), resume=True, until_epoch=2, datasets=digits, log=_quiet)
    assert [r["epoch"] for r in result["history"]] == [1, 2]
    assert (run / "curves.png").stat().st_size > 1000


@pytest.mark.parametrize("record", ['[1, 2]', '{"epoch": 1}', '{"epoch": "one", "dir": "x"}',
                                    '"checkpoints/epoch-0001"'])
def test_a_commit_record_of_the_wrong_shape_is_one_line(tmp_path, record):
    (tmp_path / "checkpoint.json").write_text(record)
    with pytest.raises(CheckpointError, match="is not a checkpoint record"):
        ckpt.latest_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="is not a checkpoint record"):
        ckpt.clean_stale(tmp_path)
