"""Batch-norm statistics re-estimated on training images: the plain average over the
batches, every other layer in eval mode, written beside the checkpoint and never over it."""
from __future__ import annotations

import hashlib
import os
import shutil

import pytest
import torch
from torch import nn

from convnets.cli import main
from convnets.engine import checkpoint as ckpt
from convnets.engine.bn_stats import reestimate_bn


def test_the_statistics_are_the_average_over_the_batches_in_eval_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout2d(0.9), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 2, 1))
    model[2].momentum = 0.3
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k
              and "num_batches" not in k}
    batches = [(torch.randn(5, 3, 6, 6) * 2 + 1, torch.zeros(5)) for _ in range(3)]
    seen = reestimate_bn(model, batches + [(torch.randn(5, 3, 6, 6), torch.zeros(5))], batches=3)
    assert seen == 15 and not model.training and model[2].momentum == 0.3
    with torch.no_grad():
        acts = [model[0](x) for x, _ in batches]  # dropout is inert: eval mode
    mean = torch.stack([a.mean((0, 2, 3)) for a in acts]).mean(0)
    var = torch.stack([a.transpose(0, 1).flatten(1).var(1) for a in acts]).mean(0)
    torch.testing.assert_close(model[2].running_mean, mean)
    torch.testing.assert_close(model[2].running_var, var)
    for k, v in before.items():
        assert torch.equal(model.state_dict()[k], v)  # the weights are untouched
    with pytest.raises(ValueError, match="no batch-norm"):
        reestimate_bn(nn.Conv2d(3, 3, 1), batches)


def test_the_command_writes_new_weights_beside_the_checkpoint_that_eval_reads(digits04_run,
                                                                           tmp_path, capsys):
    run = str(tmp_path / "run")
    shutil.copytree(digits04_run, run)
    weights = os.path.join(ckpt.latest_checkpoint(run)["dir"], "model.safetensors")
    digest = hashlib.sha256(open(weights, "rb").read()).hexdigest()
    assert main(["reestimate-bn", run, "--batches", "3", "--batch-size", "16", "--device", "cpu"]) == 0
    written = weights.replace("model.safetensors", "model-bn.safetensors")
    assert written in capsys.readouterr().out and os.path.exists(written)
    assert hashlib.sha256(open(weights, "rb").read()).hexdigest() == digest
    new, old = ckpt.load_weights_file(written), ckpt.load_weights_file(weights)
    stats = [k for k in new if k.endswith("running_mean")]
    assert stats and any(not torch.equal(new[k], old[k]) for k in stats)
    assert all(torch.equal(new[k], old[k]) for k in new if k.endswith(".weight"))
    assert main(["eval", written, "--out", str(tmp_path / "e")]) == 0
    assert "resnet20, center crops" in capsys.readouterr().out
    assert main(["reestimate-bn", run, "--out", weights]) == 2
    assert "is the weights file read" in capsys.readouterr().err
