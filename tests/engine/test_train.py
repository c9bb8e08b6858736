"""The training loop: schedules, exact resume, non-finite loss, accumulation, snapshot
ensembles, LSUV, and the `train` / `eval` / `recipes` commands."""
import json
import math
import os

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, Subset, TensorDataset

import convnets.models.lenet  # noqa: F401  (registers lenet5)
from convnets.cli import main
from convnets.data import open_dataset
from convnets.engine import checkpoint as ckpt
from convnets.engine import distributed as ddp
from convnets.engine.config import RECIPES, TrainConfig, recipe_config
from convnets.engine.init import init_lsuv
from convnets.engine.runs import evaluate_targets
from convnets.engine.epoch import NonFiniteError, train_one_epoch
from convnets.engine.schedules import lr_factor
from convnets.engine.train import fit

SIZE = (1, 32, 32)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # Tiny models on a shared CPU run fastest on one thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    """32 augmented training and 32 test digits: small, but real data with random
    augmentation, so that exact resume depends on the restored RNG states."""
    train = open_dataset(None, "train", input_size=SIZE, train_transform=True)
    test = open_dataset(None, "test", input_size=SIZE, train_transform=False)
    return Subset(train, range(32)), Subset(test, range(32))


def _cfg(**kw):
    base = dict(model="lenet5", epochs=4, batch_size=8, lr=0.01, warmup_epochs=0.5,
                schedule="cosine", deterministic=True, device="cpu", ema=0.9, workers=0)
    return TrainConfig(**{**base, **kw})


def _weights(run_dir):
    return ckpt.load_weights_file(os.path.join(ckpt.latest_checkpoint(run_dir)["dir"], "model.safetensors"))


def _quiet(_):
    pass


# --- schedules -------------------------------------------------------------------------

def test_step_schedule_divides_by_ten_at_milestones():
    f = lr_factor(TrainConfig(epochs=300, schedule="step", milestones=[150, 225], warmup_epochs=0),
                  steps_per_epoch=10)
    assert f(0) == 1.0 and f(1499) == 1.0
    assert f(1500) == pytest.approx(0.1) and f(2249) == pytest.approx(0.1)
    assert f(2250) == pytest.approx(0.01) and f(2999) == pytest.approx(0.01)


def test_warmup_then_cosine_to_zero():
    f = lr_factor(TrainConfig(epochs=10, schedule="cosine", warmup_epochs=2), steps_per_epoch=5)
    assert f(0) == pytest.approx(0.01)
    assert f(5) == pytest.approx(0.01 + 0.99 * 0.5)
    assert f(10) == pytest.approx(1.0)
    assert f(30) == pytest.approx(0.5)  # half-way through the 40 post-warm-up steps
    assert f(50) == pytest.approx(0.0, abs=1e-12)


def test_snapshot_cycles_restart_the_cosine():
    # Huang et al. 2017, Eq. 2 with T = 30 steps, M = 3 cycles.
    f = lr_factor(TrainConfig(epochs=6, snapshot_ensemble=3), steps_per_epoch=5)
    for s in range(30):
        assert f(s) == pytest.approx(0.5 * (math.cos(math.pi * (s % 10) / 10) + 1))


def test_recipes_carry_the_papers_numbers():
    cifar = recipe_config("gunn-cifar")
    assert (cifar.batch_size, cifar.lr, cifar.weight_decay, cifar.momentum, cifar.nesterov,
            cifar.epochs, cifar.milestones) == (64, 0.1, 1e-4, 0.9, True, 300, [149, 224])
    resnet = recipe_config("resnet-imagenet")
    assert (resnet.batch_size, resnet.lr, resnet.epochs, resnet.milestones) == (256, 0.1, 90, [30, 60])
    alex = recipe_config("alexnet")
    assert (alex.batch_size, alex.lr, alex.weight_decay) == (128, 0.01, 5e-4)
    assert recipe_config("gunn-imagenet").milestones == [30, 60]
    assert set(RECIPES) >= {"digits", "gunn-cifar", "gunn-imagenet", "resnet-imagenet",
                            "densenet-imagenet", "alexnet"}
    with pytest.raises(ValueError, match="unknown recipe"):
        recipe_config("nope")


# The GUNN authors' train.lua, Trainer:learningRate, for the 1-based epoch of the Torch loop.
def _released_lr(epoch: int, dataset: str, n_epochs: int, lr: float = 0.1) -> float:
    if dataset == "imagenet":
        decay = (epoch - 1) // 30
        if decay >= 3:
            decay += 1
    else:
        decay = 2 if epoch >= 0.75 * n_epochs else 1 if epoch >= 0.5 * n_epochs else 0
    return lr * 0.1 ** decay


@pytest.mark.parametrize("recipe, dataset", [
    ("gunn-cifar", "cifar10"), ("gunn-imagenet-released", "imagenet"), ("gunn-imagenet", "imagenet"),
])
def test_gunn_schedules_equal_the_released_train_lua_epoch_by_epoch(recipe, dataset):
    cfg, spe = recipe_config(recipe), 7
    f = lr_factor(cfg, steps_per_epoch=spe)
    for e in range(cfg.epochs):  # every step of 0-based epoch e runs at the lr of epoch e + 1
        want = _released_lr(e + 1, dataset, cfg.epochs)
        assert cfg.lr * f(e * spe) == pytest.approx(want, rel=1e-9), (recipe, e)
        assert cfg.lr * f(e * spe + spe - 1) == pytest.approx(want, rel=1e-9), (recipe, e)


def test_gunn_imagenet_schedules_at_their_boundaries():
    paper, released = recipe_config("gunn-imagenet"), recipe_config("gunn-imagenet-released")
    assert (paper.epochs, released.epochs) == (90, 120)
    f, g = lr_factor(paper, steps_per_epoch=10), lr_factor(released, steps_per_epoch=10)
    for step, lr in [(299, 0.1), (300, 0.01), (599, 0.01), (600, 1e-3), (899, 1e-3)]:
        assert 0.1 * f(step) == pytest.approx(lr) and 0.1 * g(step) == pytest.approx(lr)
    assert 0.1 * g(900) == pytest.approx(1e-5) and 0.1 * g(1199) == pytest.approx(1e-5)
    cifar = lr_factor(recipe_config("gunn-cifar"), steps_per_epoch=10)
    assert cifar(1489) == 1.0 and cifar(1490) == pytest.approx(0.1)
    assert cifar(2239) == pytest.approx(0.1) and cifar(2240) == pytest.approx(0.01)


def test_gunn24_snapshot_recipe_is_six_50_epoch_cosine_cycles():
    cfg = recipe_config("gunn-cifar-snapshot")
    assert (cfg.model, cfg.preset, cfg.epochs, cfg.snapshot_ensemble, cfg.lr, cfg.batch_size) == (
        "gunn24", "gunn-cifar", 300, 6, 0.1, 64)
    f = lr_factor(cfg, steps_per_epoch=4)
    for cycle in range(6):
        start = cycle * 50 * 4
        assert f(start) == 1.0  # Huang et al. 2017a, Eq. 2: restart at the cycle's start
        assert f(start + 100) == pytest.approx(0.5)
        assert f(start + 199) == pytest.approx(0.5 * (1 + math.cos(math.pi * 199 / 200)))


def test_gunn_and_imagenet_recipes_use_the_authors_augmentation():
    assert recipe_config("gunn-cifar").preset == "gunn-cifar"
    for name in ("gunn-imagenet", "gunn-imagenet-released", "resnet-imagenet", "densenet-imagenet"):
        assert recipe_config(name).preset == "fb-resnet", name
    assert recipe_config("alexnet").preset == "alexnet"


def test_recipes_command_lists_the_gunn_recipes(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in ("gunn-cifar-snapshot  (", "gunn-imagenet-released  (", "fb-resnet ",
                 "gunn-cifar ", "step /10 at 30, 60, 90, 90"):
        assert name in out, name


# --- one epoch -------------------------------------------------------------------------

def _mlp():
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 3))


def test_gradient_accumulation_equals_the_larger_batch():
    data = TensorDataset(torch.randn(32, 3, 2, 2), torch.randint(0, 3, (32,)))
    results = []
    for batch, accum in [(16, 1), (8, 2)]:
        model = _mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, nesterov=True)
        loader = ddp.make_loader(data, batch_size=batch, env=ddp.DistEnv(), train=True, workers=0, seed=3)
        stats = train_one_epoch(model, loader, opt, device=torch.device("cpu"),
                                criterion=nn.CrossEntropyLoss(), accum_steps=accum)
        assert stats["steps"] == 2 and stats["images"] == 32
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(results[0], results[1], atol=1e-6, rtol=0)


def test_bf16_autocast_trains_and_fp16_needs_a_gpu(tmp_path, digits):
    model = _mlp()
    data = TensorDataset(torch.randn(16, 3, 2, 2), torch.randint(0, 3, (16,)))
    loader = ddp.make_loader(data, batch_size=8, env=ddp.DistEnv(), train=True, workers=0, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    stats = train_one_epoch(model, loader, opt, device=torch.device("cpu"),
                            criterion=nn.CrossEntropyLoss(), amp="bf16")
    assert math.isfinite(stats["loss"]) and stats["steps"] == 2
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
            fit(_cfg(amp="fp16"), str(tmp_path / "r"), datasets=digits, log=_quiet)


# --- whole runs ------------------------------------------------------------------------

def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, digits):
    cfg = _cfg()
    whole = fit(cfg, str(tmp_path / "whole"), datasets=digits, log=_quiet)
    fit(cfg, str(tmp_path / "split"), datasets=digits, until_epoch=2, log=_quiet)
    assert ckpt.latest_checkpoint(tmp_path / "split")["epoch"] == 2
    resumed = fit(cfg, str(tmp_path / "split"), resume=True, datasets=digits, log=_quiet)

    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "split")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ema_a = ckpt.load_weights_file(tmp_path / "whole/checkpoints/epoch-0004/ema.safetensors")
    ema_b = ckpt.load_weights_file(tmp_path / "split/checkpoints/epoch-0004/ema.safetensors")
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)
    assert [r["train_loss"] for r in whole["history"]] == [r["train_loss"] for r in resumed["history"]]
    # The weights really moved: the check above is not comparing two initialisations.
    assert len({r["train_loss"] for r in whole["history"]}) == 4

    run = tmp_path / "whole"
    rows = [json.loads(line) for line in open(run / "metrics.jsonl")]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert {"lr", "train_loss", "train_top1_err", "test_loss", "test_top1_err", "test_top5_err",
            "best_test_top1_err", "best_epoch", "images_per_s", "time"} <= set(rows[0])
    assert (run / "curves.png").stat().st_size > 1000
    assert os.listdir(run / "tb")
    assert json.load(open(run / "config.json"))["epochs"] == 4

    with pytest.raises(ValueError, match="already holds a run"):
        fit(cfg, str(run), datasets=digits, log=_quiet)


class _NaNAfter(Dataset):
    """Its images turn NaN after ``n`` reads: a fault in the middle of a run."""

    def __init__(self, base, n):
        self.base, self.n, self.reads = base, n, 0

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        self.reads += 1
        x, y = self.base[i]
        return (x * float("nan") if self.reads > self.n else x), y


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, digits):
    train, test = digits
    run = tmp_path / "nan"
    with pytest.raises(NonFiniteError) as err:
        fit(_cfg(epochs=3, ema=0.0), str(run), datasets=(_NaNAfter(train, 32), test), log=_quiet)
    message = str(err.value)
    assert "\n" not in message and "epoch 2" in message and "last good checkpoint (epoch 1)" in message
    assert ckpt.latest_checkpoint(run)["epoch"] == 1
    assert all(torch.isfinite(v.float()).all() for v in _weights(run).values())


def test_snapshot_ensemble_writes_m_snapshots_and_eval_averages_them(tmp_path, digits, capsys):
    run = tmp_path / "snap"
    result = fit(_cfg(epochs=2, snapshot_ensemble=2, ema=0.0), str(run), datasets=digits, log=_quiet)
    snaps = sorted(os.listdir(run / "snapshots"))
    assert snaps == ["snapshot-1.safetensors", "snapshot-2.safetensors"]
    # Each cycle starts again from the full learning rate.
    assert [r["lr"] for r in result["history"]][1] == pytest.approx(0.01)

    # eval of the run ensembles both snapshots: its loss is the NLL of their mean softmax,
    # recomputed here member by member.
    res = evaluate_targets([str(run)], data="synthetic:40", device="cpu", log=_quiet)
    assert res["members"] == 2 and (run / "confusion.png").exists()
    test = open_dataset("synthetic:40", "test", input_size=SIZE, train_transform=False)
    x = torch.stack([test[i][0] for i in range(len(test))])
    y = torch.tensor([test[i][1] for i in range(len(test))])
    probs = []
    for s in snaps:
        m = convnets.models.create_model("lenet5", num_classes=test.num_classes)
        convnets.models.load_weights(m, str(run / "snapshots" / s))
        with torch.no_grad():
            probs.append(m.eval()(x).softmax(-1))
    assert not torch.allclose(probs[0], probs[1])  # two different members
    mean = (probs[0] + probs[1]) / 2
    assert res["loss"] == pytest.approx(nn.functional.nll_loss(mean.log(), y).item(), rel=1e-4)
    assert res["top1_err"] == pytest.approx(100.0 * (mean.argmax(1) != y).float().mean().item())


def test_lsuv_gives_unit_output_variance():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2), nn.ReLU(),
                          nn.Flatten(), nn.Linear(32 * 6 * 6, 10))
    batch = torch.randn(64, 3, 16, 16) * 5
    init_lsuv(model, batch, tol=0.01)
    with torch.no_grad():
        h1 = model[0](batch)
        h2 = model[2](model[1](h1))
        out = model(batch)
    for h in (h1, h2, out):
        assert h.var().item() == pytest.approx(1.0, abs=0.02)
    w = model[5].weight
    # Orthonormal rows before the rescaling: W W^T is a multiple of the identity.
    gram = w @ w.T
    torch.testing.assert_close(gram / gram.diagonal().mean(), torch.eye(10), atol=1e-4, rtol=0)


def test_lsuv_leaves_no_hook_behind_when_the_batch_does_not_fit():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 2 * 2, 10))
    with pytest.raises(RuntimeError):
        init_lsuv(model, torch.randn(2, 3, 8, 8))  # the Linear layer expects 4x4 inputs
    assert all(not m._forward_hooks for m in model.modules())


# --- the commands ----------------------------------------------------------------------

def test_train_then_eval_reports_the_same_error(tmp_path, capsys):
    run = str(tmp_path / "cli")
    code = main(["train", "lenet5", "--data", "synthetic:48", "--epochs", "1", "--batch-size", "16",
                 "--out", run, "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    last = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))][-1]
    capsys.readouterr()
    assert main(["eval", run]) == 0
    out = capsys.readouterr().out
    assert f"top-1 error {last['test_top1_err']:.2f}%" in out
    assert os.path.exists(os.path.join(run, "confusion.png"))
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert "gunn-cifar" in out and "lr 0.1" in out and "cifar " in out


@pytest.mark.parametrize("argv, message", [
    (["train", "nosuchnet"], "unknown model"),
    (["train", "--recipe", "nosuch"], "unknown recipe"),
    (["train", "--resume", "/nonexistent/run"], "not found"),
    (["train", "--resume", "/tmp", "--recipe", "digits"], "--recipe cannot be given"),
    (["train", "--resume", "/tmp"], "no config.json"),
    (["train", "--amp", "fp32"], "invalid choice"),
    (["eval", "/nonexistent/run.safetensors"], "no run directory"),
])
def test_bad_input_is_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_existing_run_dir_is_never_overwritten(tmp_path, capsys):
    run = str(tmp_path / "keep")
    assert main(["train", "lenet5", "--data", "synthetic:32", "--epochs", "1", "--batch-size", "16",
                 "--out", run]) == 0
    before = open(os.path.join(run, "checkpoint.json")).read()
    capsys.readouterr()
    assert main(["train", "lenet5", "--data", "synthetic:32", "--out", run]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert open(os.path.join(run, "checkpoint.json")).read() == before


def test_auxiliary_classifiers_add_their_weighted_losses():
    from convnets.engine.epoch import _logits_and_loss

    torch.manual_seed(0)
    main, aux1, aux2 = torch.randn(3, 4, 5).unbind(0)
    y = torch.tensor([0, 1, 2, 3])
    ce = torch.nn.CrossEntropyLoss()
    logits, loss = _logits_and_loss((main, aux1, aux2), y, ce, 0.3)
    assert logits is main
    torch.testing.assert_close(loss, ce(main, y) + 0.3 * (ce(aux1, y) + ce(aux2, y)))
    logits, loss = _logits_and_loss(main, y, ce, 0.3)
    torch.testing.assert_close(loss, ce(main, y))


def test_a_run_at_another_input_size_is_read_back_at_that_size(tmp_path, capsys, monkeypatch):
    """--input-size is part of the run: eval and analyze use it, not the model's default."""
    run = str(tmp_path / "small")
    assert main(["train", "gunn15", "--data", "synthetic:32", "--epochs", "1", "--batch-size", "16",
                 "--input-size", "16", "--out", run, "--device", "cpu"]) == 0
    cfg = json.load(open(os.path.join(run, "config.json")))
    assert cfg["input_size"] == [3, 16, 16]
    last = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))][-1]
    capsys.readouterr()
    assert main(["eval", run]) == 0
    assert f"top-1 error {last['test_top1_err']:.2f}%" in capsys.readouterr().out
    import convnets.inspect.singularity as singularity

    seen, analyze = [], singularity.analyze_singularities

    def spy(model, batches, **kw):
        batches = list(batches)
        seen.extend(tuple(x.shape[1:]) for x in batches)
        return analyze(model, iter(batches), **kw)

    monkeypatch.setattr(singularity, "analyze_singularities", spy)
    assert main(["analyze", "singularity", "gunn15", "--run", run, "--batches", "1"]) == 0
    assert seen == [(3, 16, 16)]
