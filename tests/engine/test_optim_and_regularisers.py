"""The recipes' pieces, each against a reference: RMSProp as TensorFlow defines it
(against timm's RMSpropTF and the formula), the staircase, per-milestone, iteration and
constant warm-up schedules, the plateau rule on the validation split only, gradient
clipping, --init-from, stochastic depth's per-batch draw and model options in the run."""
import json
import math
import os

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from convnets.engine import checkpoint as ckpt
from convnets.engine.config import TrainConfig
from convnets.engine.epoch import train_one_epoch
from convnets.engine.init_from import init_from
from convnets.engine.optim import RMSpropTF, build_optimizer, scaled_lr
from convnets.engine.schedules import Schedule, lr_factor
from convnets.engine.train import fit
from convnets.engine.validation import validation_indices
from convnets.errors import ConfigError
from convnets.models import create_model
from convnets.models.layers import drop_path


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))


def _grads(net, seed):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(8, 5, generator=g), torch.randint(0, 3, (8,), generator=g)
    net.zero_grad()
    nn.functional.cross_entropy(net(x), y).backward()


# --- RMSProp-TF ------------------------------------------------------------------------

def test_rmsprop_tf_steps_equal_timms_rmsproptf():
    from timm.optim import RMSpropTF as TimmRMSpropTF

    ours, theirs = _net(), _net()
    kw = dict(lr=0.045, momentum=0.9, weight_decay=4e-5)
    a = RMSpropTF(ours.parameters(), decay=0.9, eps=1.0, **kw)
    b = TimmRMSpropTF(theirs.parameters(), alpha=0.9, eps=1.0, **kw)
    for step in range(5):
        for net in (ours, theirs):
            _grads(net, step)
        a.step()
        b.step()
    for p, q in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_rmsprop_tf_step_equals_the_formula():
    w = torch.tensor([1.0, -2.0], requires_grad=True)
    opt = RMSpropTF([w], lr=0.1, decay=0.9, eps=1.0, momentum=0.5)
    ms, mom, value = torch.ones(2), torch.zeros(2), torch.tensor([1.0, -2.0])
    for g in (torch.tensor([0.5, 3.0]), torch.tensor([-1.0, 0.25])):
        w.grad = g.clone()
        opt.step()
        ms = 0.9 * ms + 0.1 * g * g                  # the mean square starts at 1
        mom = 0.5 * mom + 0.1 * g / torch.sqrt(ms + 1.0)  # epsilon inside the root, lr inside
        value = value - mom
        torch.testing.assert_close(w.detach(), value)
    # PyTorch's RMSprop takes another step from the same gradient.
    v = torch.tensor([1.0, -2.0], requires_grad=True)
    v.grad = torch.tensor([0.5, 3.0])
    torch.optim.RMSprop([v], lr=0.1, alpha=0.9, eps=1.0, momentum=0.5).step()
    w2 = torch.tensor([1.0, -2.0], requires_grad=True)
    w2.grad = torch.tensor([0.5, 3.0])
    RMSpropTF([w2], lr=0.1, decay=0.9, eps=1.0, momentum=0.5).step()
    assert not torch.allclose(v, w2)


def test_the_config_builds_the_optimizer_with_a_linearly_scaled_lr():
    cfg = TrainConfig(optimizer="rmsprop-tf", lr=0.045, lr_batch=1600, batch_size=32,
                      momentum=0.9, nesterov=False, warmup_epochs=0)
    opt = build_optimizer(_net(), cfg, world_size=2)
    assert isinstance(opt, RMSpropTF)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.045 * 64 / 1600)
    assert scaled_lr(cfg.replace(lr_batch=0)) == 0.045


# --- schedules -------------------------------------------------------------------------

def test_staircase_exponential_decays_every_n_epochs():
    f = lr_factor(TrainConfig(epochs=20, schedule="exp", gamma=0.94, decay_every=2,
                              warmup_epochs=0), steps_per_epoch=3)
    assert [f(e * 3) for e in range(6)] == [1, 1, 0.94, 0.94, 0.94 ** 2, 0.94 ** 2]
    assert f(3 * 2 - 1) == 1 and f(3 * 20 - 1) == pytest.approx(0.94 ** 9)
    with pytest.raises(ConfigError, match="decay_every"):
        TrainConfig(schedule="exp")


def test_per_milestone_factors_and_iteration_milestones():
    cfg = TrainConfig(epochs=20, schedule="step", milestones=[2, 5], gammas="0.4,0.5",
                      warmup_epochs=0)
    f = lr_factor(cfg, steps_per_epoch=10)
    assert (f(19), f(20), f(49), f(50)) == (1, 0.4, 0.4, pytest.approx(0.2))
    with pytest.raises(ConfigError, match="one per milestone"):
        TrainConfig(milestones=[2, 5], gammas="0.5")
    it = lr_factor(TrainConfig(epochs=4, schedule="step", schedule_unit="iter",
                               milestones=[7, 11], warmup_epochs=3, warmup_mode="constant",
                               warmup_factor=0.1), steps_per_epoch=5)
    assert [it(s) for s in range(13)] == pytest.approx(
        [0.1] * 3 + [1.0] * 4 + [0.1] * 4 + [0.01] * 2)


def _plateau_cfg(**kw):
    return TrainConfig(**{**dict(schedule="plateau", val_split=4, plateau_patience=2,
                                 warmup_epochs=0, lr=0.1), **kw})


def test_plateau_divides_after_patience_epochs_without_improvement_and_resumes():
    opt = torch.optim.SGD(_net().parameters(), lr=0.1)
    sched = Schedule(opt, _plateau_cfg(), steps_per_epoch=1)
    decided = [sched.end_epoch(err) for err in (50, 40, 41, 40, 39, 39, 45)]
    assert decided == [False, False, False, True, False, False, True]
    assert opt.param_groups[0]["lr"] == pytest.approx(0.001)
    again = Schedule(torch.optim.SGD(_net().parameters(), lr=0.1), _plateau_cfg(), 1)
    again.load_state_dict(sched.state_dict())
    assert again.state_dict() == sched.state_dict()
    assert again.optimizer.param_groups[0]["lr"] == pytest.approx(0.001)
    with pytest.raises(ConfigError, match="validation split"):
        TrainConfig(schedule="plateau", plateau_patience=2)


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 1, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g))


def test_plateau_decisions_and_the_best_epoch_read_only_the_validation_split(tmp_path):
    cfg = TrainConfig(model="lenet5", epochs=4, batch_size=8, lr=0.05, schedule="plateau",
                      val_split=8, plateau_patience=1, warmup_epochs=0, deterministic=True,
                      device="cpu", workers=0)
    train = _data(32, 0)
    runs = [fit(cfg, str(tmp_path / f"run{i}"), datasets=(train, _data(16, seed)), log=lambda _: None)
            for i, seed in enumerate((1, 2))]
    a, b = ([r["lr"] for r in run["history"]] for run in runs)
    assert a == b and len(set(a)) > 1, (a, b)  # the plateau decided, the same way both times
    assert [r["val_top1_err"] for r in runs[0]["history"]] == \
        [r["val_top1_err"] for r in runs[1]["history"]]
    assert [r["test_top1_err"] for r in runs[0]["history"]] != \
        [r["test_top1_err"] for r in runs[1]["history"]]
    rows = [json.loads(line) for line in open(tmp_path / "run0" / "metrics.jsonl")]
    best = min(rows, key=lambda r: (r["val_top1_err"], r["epoch"]))
    assert rows[-1]["best_epoch"] == best["epoch"] and rows[-1]["best_by"] == "validation"
    assert runs[0]["best"]["epoch"] == best["epoch"] and runs[0]["best_by"] == "validation"


def test_the_validation_split_is_drawn_by_the_seed_and_disjoint():
    train, val = validation_indices(100, 10, seed=3)
    assert (train, val) == validation_indices(100, 10, seed=3)
    assert validation_indices(100, 10, seed=4)[1] != val
    assert len(val) == 10 and not set(train) & set(val) and len(train) + len(val) == 100
    with pytest.raises(ConfigError, match="val_split"):
        validation_indices(10, 10, seed=0)


# --- regularisers ----------------------------------------------------------------------

def test_gradient_clipping_bounds_the_steps_global_norm():
    data = TensorDataset(torch.randn(8, 5) * 100, torch.randint(0, 3, (8,)))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    seen = []

    class Spy(torch.optim.SGD):
        def step(self, closure=None):
            seen.append(torch.sqrt(sum(p.grad.pow(2).sum() for p in self.param_groups[0]["params"])))
            return super().step(closure)

    net = _net()
    train_one_epoch(net, loader, Spy(net.parameters(), lr=0.0), device=torch.device("cpu"),
                    criterion=nn.CrossEntropyLoss(), clip_grad_norm=0.01)
    assert seen[0].item() == pytest.approx(0.01, rel=1e-4)


def test_stochastic_depth_draws_per_sample_or_once_per_batch():
    torch.manual_seed(0)
    x = torch.ones(64, 2, 3, 3)
    per_sample = drop_path(x, 0.5, training=True)
    kept = per_sample.flatten(1).amax(1) > 0
    assert 0 < kept.sum() < 64  # samples differ
    for _ in range(10):
        per_batch = drop_path(x, 0.5, training=True, per_batch=True)
        assert per_batch.unique().numel() == 1  # all kept (x 2) or all dropped
    model = create_model("resnet20", drop_path_rate=0.5, drop_path_draw="batch")
    rates = [m.p for m in model.modules() if type(m).__name__ == "DropPath"]
    assert rates == pytest.approx([0.5 * (l + 1) / 9 for l in range(9)])  # linear, p_L = 0.5
    assert all(m.per_batch for m in model.modules() if type(m).__name__ == "DropPath")


def test_model_options_reach_the_model_and_are_saved_in_the_run(tmp_path):
    cfg = TrainConfig(model="googlenet", model_options="dropout=0.4,dropout_aux=0.7",
                      epochs=1, batch_size=4, deterministic=True, device="cpu", workers=0,
                      data="synthetic:8", input_size=[3, 16, 16], warmup_epochs=0)
    assert cfg.model_kwargs() == {"dropout": 0.4, "dropout_aux": 0.7}
    model = create_model("googlenet", **cfg.model_kwargs())
    assert model.dropout.p == 0.4 and model.aux1.dropout.p == 0.7
    fit(cfg, str(tmp_path / "run"), log=lambda _: None)
    saved = json.load(open(tmp_path / "run" / "config.json"))
    assert saved["model_options"] == "dropout=0.4,dropout_aux=0.7"
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        TrainConfig(model_options="dropout")
    with pytest.raises(ConfigError, match="no option"):
        fit(cfg.replace(model_options="nonsense=1"), str(tmp_path / "bad"), log=lambda _: None)


# --- init-from -------------------------------------------------------------------------

def test_init_from_copies_what_matches_and_reports_the_rest(tmp_path):
    source = create_model("resnet20", num_classes=10)
    ckpt.save_weights(tmp_path / "w.safetensors", source.state_dict())
    target = create_model("resnet20", num_classes=3)  # another head
    report = init_from(target, str(tmp_path / "w.safetensors"))
    assert "fc.weight (10x64 -> 3x64)" in " ".join(report.mismatched)
    assert torch.equal(target.conv1.weight, source.conv1.weight)
    assert len(report.copied) == len(target.state_dict()) - 2 and not report.missing
    assert "copied" in report.lines()[0]
    with pytest.raises(ConfigError, match="shares no tensor"):
        init_from(nn.Linear(2, 2), str(tmp_path / "w.safetensors"))


def test_init_from_a_run_directory_starts_a_run_from_its_weights(tmp_path):
    base = dict(model="lenet5", epochs=1, batch_size=8, deterministic=True, device="cpu",
                workers=0, warmup_epochs=0)
    data = (_data(16, 0), _data(8, 1))
    fit(TrainConfig(**base), str(tmp_path / "a"), datasets=data, log=lambda _: None)
    lines = []
    cfg = TrainConfig(**base, init_from=str(tmp_path / "a"), lr=1e-12)
    fit(cfg, str(tmp_path / "b"), datasets=data, log=lines.append)
    assert any(line.startswith("init-from") for line in lines)
    a = ckpt.load_weights_file(os.path.join(ckpt.latest_checkpoint(tmp_path / "a")["dir"],
                                            "model.safetensors"))
    b = ckpt.load_weights_file(os.path.join(ckpt.latest_checkpoint(tmp_path / "b")["dir"],
                                            "model.safetensors"))
    # lr 1e-12 leaves the copied weights (almost) where they started.
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a if "running" not in k)


def test_train_says_the_best_epoch_was_chosen_on_validation(tmp_path, capsys):
    from convnets.cli import main

    code = main(["train", "lenet5", "--data", "synthetic:24", "--epochs", "2", "--batch-size", "8",
                 "--schedule", "plateau", "--val-split", "8", "--plateau-patience", "1",
                 "--warmup", "0", "--device", "cpu", "--out", str(tmp_path / "run")])
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "best (by validation) epoch" in out and "val top-1 err" in out


def test_a_checkpoint_of_the_former_lambdalr_scheduler_still_resumes():
    cfg = TrainConfig(epochs=2, schedule="step", milestones=[1], warmup_epochs=0, lr=0.1)
    net = _net()
    old = torch.optim.lr_scheduler.LambdaLR(torch.optim.SGD(net.parameters(), lr=0.1),
                                            lr_factor(cfg, 4))
    for _ in range(5):
        old.optimizer.step()
        old.step()
    new = Schedule(torch.optim.SGD(net.parameters(), lr=0.1), cfg, 4)
    new.load_state_dict(old.state_dict())
    assert new.last_step == 5 and new.get_last_lr() == pytest.approx(old.get_last_lr())
