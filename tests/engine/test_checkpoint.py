"""Checkpoints: atomic writes, a crash mid-save keeps the previous one, safe loading."""
import os
import random

import numpy as np
import pytest
import torch
from torch import nn

from convnets.engine import checkpoint as ckpt


def _tiny():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 3))


def _step(model, opt, sched):
    loss = model(torch.randn(5, 1, 8, 8)).square().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "f.bin"
    ckpt.atomic_write(path, lambda f: f.write(b"old contents"))

    def half_then_crash(f):
        f.write(b"new con")
        raise OSError("disk full")

    with pytest.raises(OSError):
        ckpt.atomic_write(path, half_then_crash)
    assert path.read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["f.bin"]  # no temporary file left behind


def test_crash_mid_save_leaves_previous_checkpoint_loadable(tmp_path, monkeypatch):
    model = _tiny()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, 0.5)
    _step(model, opt, sched)
    ckpt.save_checkpoint(tmp_path, model=model, epoch=1, step=1, optimizer=opt, scheduler=sched)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    saved_lr = opt.param_groups[0]["lr"]

    _step(model, opt, sched)
    real_save = torch.save

    def torn_save(obj, f):  # write part of the state file, then die as a kill would
        real_save(obj, f)
        f.truncate(100)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(tmp_path, model=model, epoch=2, step=2, optimizer=opt, scheduler=sched)
    monkeypatch.undo()

    assert ckpt.latest_checkpoint(tmp_path)["epoch"] == 1
    fresh = _tiny()
    opt2 = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, 1, 0.5)
    state = ckpt.load_checkpoint(tmp_path, model=fresh, optimizer=opt2, scheduler=sched2)
    assert state["epoch"] == 1 and state["step"] == 1
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, saved[k]), k
    assert opt2.param_groups[0]["lr"] == saved_lr
    assert len(opt2.state) == len(list(fresh.parameters()))  # momentum buffers came back

    # The next successful save replaces the torn epoch-2 directory and prunes epoch 1.
    ckpt.save_checkpoint(tmp_path, model=model, epoch=2, step=2, optimizer=opt, scheduler=sched)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["epoch-0002"]
    assert ckpt.latest_checkpoint(tmp_path)["epoch"] == 2


def test_state_file_loads_without_unpickling_code(tmp_path):
    model = _tiny()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 ** s)
    scaler = torch.amp.GradScaler("cpu")
    _step(model, opt, sched)
    d = ckpt.save_checkpoint(tmp_path, model=model, epoch=1, step=1, optimizer=opt,
                             scheduler=sched, scaler=scaler)
    state = torch.load(os.path.join(d, "state.pt"), weights_only=True)
    assert set(state) >= {"epoch", "step", "rng", "optimizer", "scheduler", "scaler"}
    from safetensors.torch import load_file

    weights = load_file(os.path.join(d, "model.safetensors"))
    assert set(weights) == set(model.state_dict())


def test_rng_states_round_trip():
    state = ckpt.rng_state()
    first = (random.random(), np.random.rand(), np.random.randn(), torch.rand(3))
    ckpt.set_rng_state(state)
    again = (random.random(), np.random.rand(), np.random.randn(), torch.rand(3))
    assert first[:3] == again[:3] and torch.equal(first[3], again[3])


def test_missing_run_dir_and_checkpoint_are_one_line_errors(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="not found"):
        ckpt.latest_checkpoint(tmp_path / "nope")
    with pytest.raises(ckpt.CheckpointError, match="no checkpoint"):
        ckpt.latest_checkpoint(tmp_path)
