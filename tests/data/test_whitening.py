"""NiN's GCN + ZCA whitening (pylearn2's settings), fitted on the training split."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from convnets.data import build_transform, open_dataset
from convnets.data.transforms import PRESETS
from convnets.data.whitening import (GCN_SCALE, ZCA_BIAS, Whiten, Whitening,
                                     global_contrast_normalize, whitening_for)
from convnets.errors import ConfigError


def _pylearn2_reference(x: np.ndarray):
    """pylearn2's global_contrast_normalize(scale=55) then ZCA(filter_bias=0.1).fit, in numpy."""
    x = x - x.mean(axis=1, keepdims=True)
    norms = np.sqrt((x ** 2).sum(axis=1, keepdims=True))
    norms[norms < 1e-8] = 1.0
    x = x * 55.0 / norms
    mean = x.mean(axis=0)
    centred = x - mean
    eigval, eigvec = np.linalg.eigh(centred.T @ centred / len(x) + 0.1 * np.eye(x.shape[1]))
    return mean, (eigvec * eigval ** -0.5) @ eigvec.T


def test_gcn_gives_each_image_zero_mean_and_norm_55():
    x = torch.rand(5, 12) * 3 + torch.arange(5.0)[:, None]
    out = global_contrast_normalize(x)
    torch.testing.assert_close(out.mean(1), torch.zeros(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.norm(dim=1), torch.full((5,), GCN_SCALE))
    assert torch.equal(global_contrast_normalize(torch.full((1, 12), 0.4)), torch.zeros(1, 12))
    assert (GCN_SCALE, ZCA_BIAS) == (55.0, 0.1)


def test_the_fit_is_pylearn2s_and_deterministic():
    images = torch.rand(300, 3, 2, 2)
    images[:, 1] = 0.6 * images[:, 0] + 0.4 * images[:, 1]  # correlated channels
    fitted = Whitening.fit(images, chunk=64)
    mean, matrix = _pylearn2_reference(images.reshape(300, -1).double().numpy())
    np.testing.assert_allclose(fitted.mean.numpy(), mean, atol=1e-5)
    np.testing.assert_allclose(fitted.matrix.numpy(), matrix, atol=1e-4)
    assert fitted == Whitening.fit(images) and fitted.input_size == (3, 2, 2)
    # the training images come out centred, their covariance C (C + 0.1 I)^-1: near white
    out = fitted.apply(images).reshape(300, -1).double()
    torch.testing.assert_close(out.mean(0), torch.zeros(12, dtype=torch.float64), atol=1e-4, rtol=0)
    cov = torch.cov(out.T, correction=0)
    eig = torch.linalg.eigvalsh(cov)
    assert eig.max() < 1 and eig[eig > 1e-6].min() > 0.3


def test_the_nin_preset_replaces_the_normalisation_by_the_whitening():
    images = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    fitted = Whitening.fit(images.float() / 255)
    kw = dict(input_size=(3, 8, 8), mean=(0.5,), std=(0.2,), whitening=fitted)
    evalt = build_transform("nin-cifar", train=False, **kw)
    assert not any(isinstance(s, v2.Normalize) for s in evalt.transforms)
    img = images[3]
    torch.testing.assert_close(evalt(img), fitted.apply(img.float() / 255))
    # training flips and shifts the whitened image; its padding is zero, the whitened mean
    train = build_transform("nin-cifar", train=True, **kw)
    kinds = [type(s) for s in train.transforms]
    i = kinds.index(Whiten)
    assert kinds[i + 1:i + 3] == [v2.RandomHorizontalFlip, v2.RandomCrop]
    assert train.transforms[i + 2].padding == [1, 1, 1, 1] and train.transforms[i + 2].fill == 0
    with pytest.raises(ConfigError, match="needs the whitening fitted on its training split"):
        build_transform("nin-cifar", train=False, input_size=(3, 8, 8), mean=(0.5,), std=(0.2,))
    with pytest.raises(ValueError, match="does not whiten"):
        build_transform("cifar", train=False, **kw)


def test_open_dataset_whitens_with_the_fit_on_the_training_split():
    size = (3, 8, 8)
    test = open_dataset("digits:0-2", "test", input_size=size, train_transform=False,
                        preset="nin-cifar")
    train = open_dataset("digits:0-2", "train", input_size=size, train_transform=False,
                         preset="none", normalisation=((0.0,), (1.0,)))
    fitted = Whitening.fit(torch.stack([train[i][0] for i in range(len(train))]))
    assert whitening_for("nin-cifar", "digits:0-2", size) == fitted
    assert whitening_for("cifar", "digits:0-2", size) is None
    raw = test.raw_image(5)
    torch.testing.assert_close(test[5][0], fitted.apply(v2.Resize(size[1:])(
        raw.expand(3, *raw.shape[1:]).float() / 255)), atol=1e-4, rtol=0)
    # the whitening presets' evaluation geometry is the resize of "none", which the fit reads
    assert PRESETS["nin-cifar"].eval.geometry(8, 8)[0].size == PRESETS["none"].eval.geometry(8, 8)[0].size


def test_a_saved_whitening_reads_back_equal(tmp_path):
    fitted = Whitening.fit(torch.rand(20, 1, 3, 3))
    path = str(tmp_path / "w.safetensors")
    fitted.save(path)
    assert Whitening.load(path) == fitted


def test_eval_and_resume_use_the_runs_own_fit_and_never_fit_again(tmp_path, monkeypatch):
    """A nin-cifar run keeps its fit; evaluating it (on other data too) and resuming it read
    that fit back: what its network was trained with, and no second eigendecomposition."""
    from convnets.data import whitening as whitening_module
    from convnets.engine.config import TrainConfig
    from convnets.engine.inference_spec import stored_whitening
    from convnets.engine.runs import evaluate_targets
    from convnets.engine.train import fit

    run = str(tmp_path / "run")
    cfg = TrainConfig(model="resnet20", data="digits:0,1", input_size=[3, 8, 8], epochs=2,
                      batch_size=32, preset="nin-cifar", workers=0, device="cpu")
    fit(cfg, run, until_epoch=1, log=lambda _: None, progress=False)
    kept = stored_whitening(run)
    assert kept is not None and kept.input_size == (3, 8, 8)

    def no_refit(*args):
        raise AssertionError("the whitening was fitted again")

    monkeypatch.setattr(whitening_module, "_fitted", no_refit)
    used = []
    real = whitening_module.whitening_for
    monkeypatch.setattr("convnets.data.datasets.whitening_for",
                        lambda *a: used.append(real(*a)) or used[-1])
    evaluate_targets([run], data="digits:2,3", out=str(tmp_path / "eval"), log=lambda _: None)
    assert used and all(torch.equal(w.mean, kept.mean) for w in used if w is not None)
    fit(cfg, run, resume=True, log=lambda _: None, progress=False)
