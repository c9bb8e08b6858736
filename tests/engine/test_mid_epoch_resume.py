"""Checkpoints within an epoch: a run stopped by SIGTERM at a step, or killed (SIGKILL)
after a ``--save-every`` checkpoint, and resumed, ends with the weights of a run that was
never interrupted, bit for bit (CPU, deterministic), with and without loading workers,
from digits in memory and from shards."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from torch.utils.data import Dataset

from convnets.data import open_dataset
from convnets.engine import checkpoint as ckpt
from convnets.engine.config import TrainConfig
from convnets.engine.preemption import Preempted
from convnets.engine.train import fit

SIZE = (1, 32, 32)
DATA = "digits:0-1"  # 288 training images: 36 steps of 8
ARGS = ["lenet5", "--data", DATA, "--epochs", "2", "--batch-size", "8", "--lr", "0.05",
        "--input-size", "1x32x32", "--device", "cpu", "--deterministic", "--warmup", "0.5"]


def _cfg(**kw):
    base = dict(model="lenet5", data=DATA, epochs=2, batch_size=8, lr=0.05, device="cpu",
                workers=0, input_size=list(SIZE), deterministic=True, warmup_epochs=0.5, ema=0.9)
    return TrainConfig(**{**base, **kw})


def _data():
    return (open_dataset(DATA, "train", input_size=SIZE, train_transform=True),
            open_dataset(DATA, "test", input_size=SIZE, train_transform=False))


class _SignalAt(Dataset):
    """Sends ``signum`` to this process when item number ``at`` is read."""

    def __init__(self, base, at, signum):
        self.base, self.at, self.signum, self.reads = base, at, signum, 0

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        self.reads += 1
        if self.reads == self.at:
            os.kill(os.getpid(), self.signum)
        return self.base[i]

    @property
    def num_classes(self):
        return self.base.num_classes


def _weights(run_dir):
    folder = ckpt.latest_checkpoint(run_dir)["dir"]
    out = ckpt.load_weights_file(os.path.join(folder, "model.safetensors"))
    out.update({f"ema.{k}": v for k, v in
                ckpt.load_weights_file(os.path.join(folder, "ema.safetensors")).items()})
    return out


def _assert_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run = str(tmp_path_factory.mktemp("whole") / "run")
    fit(_cfg(), run, datasets=_data(), log=lambda _: None)
    return _weights(run)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_a_signal_commits_at_the_next_step_and_resume_is_exact(tmp_path, uninterrupted, signum):
    run = str(tmp_path / "run")
    train, test = _data()
    with pytest.raises(Preempted, match=r"stopped by SIG\w+ at step 11, sample 88 of 288 in "
                                        r"epoch 1; .* --resume"):
        fit(_cfg(), run, datasets=(_SignalAt(train, 85, signum), test), log=lambda _: None)
    record = ckpt.latest_checkpoint(run)
    assert (record["epoch"], record["step"], record["position"]) == (0, 11, 88)
    assert not os.path.exists(os.path.join(run, "metrics.jsonl"))  # no epoch was finished
    assert signal.getsignal(signum) is signal.SIG_DFL  # the handlers are given back
    lines = []
    fit(_cfg(), run, resume=True, datasets=_data(), log=lines.append)
    assert lines[0].endswith("at sample 88 of epoch 1's order (step 11)")
    _assert_equal(_weights(run), uninterrupted)
    assert len(open(os.path.join(run, "metrics.jsonl")).readlines()) == 2


def test_save_every_keeps_one_checkpoint_within_the_epoch(tmp_path):
    run = str(tmp_path / "run")
    fit(_cfg(save_every=5, epochs=1), run, datasets=_data(), log=lambda _: None)
    record = ckpt.latest_checkpoint(run)
    assert (record["epoch"], record["position"], record["step"]) == (1, 0, 36)
    assert os.listdir(os.path.join(run, "checkpoints")) == ["epoch-0001"]


def _cli(args, tmp_path, **kw):
    import convnets

    src = os.path.dirname(os.path.dirname(convnets.__file__))  # this checkout's, in the run's folder
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": src}
    return subprocess.Popen([sys.executable, "-m", "convnets", "train", *args], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _wait_for_step(run_dir, step, proc, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if json.load(open(os.path.join(run_dir, ckpt.COMMIT)))["step"] >= step:
                return
        except (OSError, ValueError):
            pass
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise TimeoutError(f"no checkpoint at step {step} after {seconds} s")


@pytest.mark.parametrize("signum, shards", [(signal.SIGKILL, False), (signal.SIGTERM, False),
                                            (signal.SIGKILL, True)])
def test_killed_with_a_worker_and_resumed_equals_uninterrupted(tmp_path, signum, shards):
    args = list(ARGS)
    if shards:  # the same images, from shards
        from convnets.data.shards import write_shards

        write_shards(DATA, str(tmp_path / "shards"), shard_bytes=100_000, log=lambda _: None)
        args[args.index(DATA)] = f"shards:{tmp_path / 'shards'}"
    whole = _cli([*args, "--workers", "1", "--out", "whole"], tmp_path)
    killed = _cli([*args, "--workers", "1", "--save-every", "3", "--out", "killed"], tmp_path)
    _wait_for_step(tmp_path / "killed", 7, killed)
    killed.send_signal(signum)
    _, err = killed.communicate(timeout=120)
    if signum == signal.SIGTERM:
        assert killed.returncode == 2
        assert [line for line in err.splitlines() if line.startswith("convnets:")] == [
            line for line in err.splitlines() if "stopped by SIGTERM at step" in line]
    else:
        assert killed.returncode == -signal.SIGKILL
    record = ckpt.latest_checkpoint(tmp_path / "killed")
    assert record["epoch"] == 0 and 0 < record["position"] < 288
    resumed = _cli(["--resume", "killed", "--workers", "2"], tmp_path)
    assert resumed.wait(timeout=240) == 0, resumed.communicate()
    assert whole.wait(timeout=240) == 0, whole.communicate()
    _assert_equal(ckpt.load_weights_file(os.path.join(ckpt.latest_checkpoint(tmp_path / "killed")["dir"],
                                                      "model.safetensors")),
                  ckpt.load_weights_file(os.path.join(ckpt.latest_checkpoint(tmp_path / "whole")["dir"],
                                                      "model.safetensors")))


def test_a_signal_during_evaluation_stops_before_the_next_epoch(tmp_path, uninterrupted):
    run = str(tmp_path / "run")
    train, test = _data()
    with pytest.raises(Preempted, match=r"stopped by SIGTERM after epoch 1 \(step 36\); "):
        fit(_cfg(), run, datasets=(train, _SignalAt(test, 5, signal.SIGTERM)), log=lambda _: None)
    record = ckpt.latest_checkpoint(run)
    assert (record["epoch"], record["step"], record["position"]) == (1, 36, 0)
    fit(_cfg(), run, resume=True, datasets=_data(), log=lambda _: None)
    _assert_equal(_weights(run), uninterrupted)
