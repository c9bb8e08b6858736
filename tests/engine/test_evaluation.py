"""Evaluation: top-k, the papers' multi-view modes, convolutionize, ensembles, the PNG."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import convnets
from convnets.engine.evaluation import (convolutionize, ensemble_predict, evaluate,
                                      plot_confusion, topk_errors)
from convnets.models.layers import ConvNet


def _rank_reference(logits, targets, k):
    """Error at k by counting, for each example, the classes scored above the true one."""
    true = logits.gather(1, targets[:, None])
    above = (logits > true).sum(1)
    return 100.0 * (above >= k).float().mean().item()


def test_topk_errors_by_hand_and_against_a_rank_count():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.05, 0.15], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    targets = torch.tensor([1, 2, 0, 2])
    # top-1: right only on example 0 -> 75 %; top-2: examples 0, 1 -> 50 %; top-5 clipped to 3 -> 0 %
    errs = topk_errors(logits, targets, ks=(1, 2, 5))
    assert errs == {"top1_err": 75.0, "top2_err": 50.0, "top5_err": 0.0}
    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(500, 20, generator=g), torch.randint(0, 20, (500,), generator=g)
    errs = topk_errors(logits, targets)
    assert errs["top1_err"] == pytest.approx(_rank_reference(logits, targets, 1))
    assert errs["top5_err"] == pytest.approx(_rank_reference(logits, targets, 5))
    with pytest.raises(ValueError):
        topk_errors(logits[:0], targets[:0])


# --- small models -----------------------------------------------------------------------------


class TinyGAP(ConvNet):
    """A ConvNet with the standard head: global average pool + linear."""

    classifier_path = "fc"

    def __init__(self, classes: int = 5, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(12, classes)

    def forward_features(self, x):
        return self.body(x)


class TinyVGG(nn.Module):
    """torchvision's VGG layout (features, avgpool, classifier) at a small scale."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(6, 8, 3), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d((3, 3))
        self.classifier = nn.Sequential(nn.Linear(8 * 9, 16), nn.ReLU(True), nn.Dropout(),
                                        nn.Linear(16, 16), nn.ReLU(True), nn.Dropout(),
                                        nn.Linear(16, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# --- convolutionize ------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["torchvision", "convnets"])
def test_convolutionize_alexnet_same_logits_and_score_map(source):
    torch.manual_seed(0)
    if source == "torchvision":
        m = torchvision.models.alexnet(num_classes=10).eval()
    else:
        m = convnets.create_model("alexnet", num_classes=10).eval()
    c = convolutionize(m).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        out = c(x)
        assert out.shape == (2, 10, 1, 1)
        assert (out.flatten(1) - m(x)).abs().max() < 1e-4
        # a larger image: the 6x6 window of the first classifier layer slides over the map
        big = torch.randn(1, 3, 288, 288)
        f = m.features(big)
        assert f.shape[-1] > 6
        score = c(big)
        assert score.shape == (1, 10, f.shape[-2] - 5, f.shape[-1] - 5)
        for i, j in ((0, 0), (1, 2)):
            window = f[:, :, i:i + 6, j:j + 6].flatten(1)
            assert (score[:, :, i, j] - m.classifier(window)).abs().max() < 1e-4
        # 64 -> 1x1 features, which the original's adaptive pool stretches to 6x6
        small = torch.randn(2, 3, 64, 64)
        assert (c(small).flatten(1) - m(small)).abs().max() < 1e-4
    assert c.head[1].weight.data_ptr() == m.classifier[1].weight.data_ptr()  # shared, not copied


def test_convolutionize_vgg_layout_slides_over_larger_maps():
    m = TinyVGG().eval()
    c = convolutionize(m)
    x = torch.randn(3, 3, 10, 10)  # features: 10 -> 8 -> 4 -> 2 (smaller than 3: stretched)
    big = torch.randn(1, 3, 20, 20)  # 20 -> 18 -> 9 -> 7: 3x3 window at 5x5 positions
    with torch.no_grad():
        assert (c(x).flatten(1) - m(x)).abs().max() < 1e-5
        native = torch.randn(2, 3, 12, 12)  # 12 -> 10 -> 5 -> 3: exactly the 3x3 window
        assert c(native).shape == (2, 4, 1, 1)
        assert (c(native).flatten(1) - m(native)).abs().max() < 1e-5
        score = c(big)
        assert score.shape == (1, 4, 5, 5)
        f = m.features(big)
        for i, j in ((0, 0), (2, 4), (4, 1)):
            window = f[:, :, i:i + 3, j:j + 3].flatten(1)
            assert (score[:, :, i, j] - m.classifier(window)).abs().max() < 1e-5


@pytest.mark.parametrize("name", ["gunn15", "resnet20"])
def test_convolutionize_global_pool_nets_score_map_averages_to_logits(name):
    m = convnets.create_model(name, num_classes=10)
    # Running statistics of one training batch, as a trained model has: with the default
    # ones (BN the identity) an untrained GUNN's eval-mode activations grow with every
    # segment under its He initialisation, to ~1e24 at the logits.
    for bn in (b for b in m.modules() if isinstance(b, nn.BatchNorm2d)):
        bn.momentum = None
    with torch.no_grad():
        m(torch.randn(4, 3, 32, 32))
    m.eval()
    c = convolutionize(m)
    with torch.no_grad():
        x = torch.randn(1, 3, 32, 32)
        score = c(x)
        assert score.shape == (1, 10, 8, 8)
        assert (score.mean((2, 3)) - m(x)).abs().max() < 1e-4
        if name == "resnet20":  # (GUNN-15's forward is slow on 2 cores; same head)
            big = torch.randn(1, 3, 40, 40)
            score = c(big)
            assert score.shape == (1, 10, 10, 10)
            assert (score.mean((2, 3)) - m(big)).abs().max() < 1e-4


def test_convolutionize_refuses_unknown_structures():
    with pytest.raises(ValueError, match="convolutionize"):
        convolutionize(nn.Sequential(nn.Conv2d(3, 4, 3)))


# --- evaluate ---------------------------------------------------------------------------------


def _data(n=37, classes=5, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, classes, (n,), generator=g)


def test_evaluate_center_matches_a_direct_computation():
    m = TinyGAP()
    m.train()
    x, y = _data()
    res = evaluate(m, DataLoader(TensorDataset(x, y), batch_size=8))
    assert m.training  # flag restored
    m.eval()
    with torch.no_grad():
        logits = m(x)
    ref = topk_errors(logits, y)
    assert res["n"] == 37
    assert res["top1_err"] == pytest.approx(ref["top1_err"]) and res["top5_err"] == pytest.approx(ref["top5_err"])
    assert res["loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    pred = logits.argmax(1)
    confusion = torch.zeros(5, 5, dtype=torch.int64)
    for t, p in zip(y.tolist(), pred.tolist()):
        confusion[t, p] += 1
    assert torch.equal(res["confusion"], confusion)
    for k in range(5):
        mask = y == k
        expected = 100.0 * (pred[mask] == k).float().mean().item() if mask.any() else float("nan")
        got = res["per_class_acc"][k].item()
        assert (got != got and expected != expected) or got == pytest.approx(expected, abs=1e-4)


def test_evaluate_ten_crop_averages_softmax_of_the_ten_views():
    m = TinyGAP().eval()
    x, y = _data(n=6, size=11)
    res = evaluate(m, DataLoader(TensorDataset(x, y), batch_size=4), mode="ten_crop", crop_size=7)
    views = []
    for top, left in ((0, 0), (0, 4), (4, 0), (4, 4), (2, 2)):  # corners, then centre of 11 -> 7
        crop = x[:, :, top:top + 7, left:left + 7]
        views += [crop, crop.flip(-1)]
    with torch.no_grad():
        probs = torch.stack([F.softmax(m(v), 1) for v in views]).mean(0)
    ref = topk_errors(probs, y)
    assert res["top1_err"] == pytest.approx(ref["top1_err"])
    assert res["loss"] == pytest.approx(F.nll_loss(probs.log(), y).item(), rel=1e-5)


def test_evaluate_multi_crop_is_the_vgg_grid_with_mirrors():
    m = TinyGAP().eval()
    x, y = _data(n=5, size=11)
    res = evaluate(m, DataLoader(TensorDataset(x, y), batch_size=2), mode="multi_crop",
                   crop_size=7, grid=3, scales=(11, 13))
    probs = []
    with torch.no_grad():
        for q, offsets in ((11, (0, 2, 4)), (13, (0, 3, 6))):
            xs = x if q == 11 else F.interpolate(x, size=(q, q), mode="bilinear", antialias=True)
            for top in offsets:
                for left in offsets:
                    crop = xs[:, :, top:top + 7, left:left + 7]
                    probs += [F.softmax(m(crop), 1), F.softmax(m(crop.flip(-1)), 1)]
    assert len(probs) == 36
    probs = torch.stack(probs).mean(0)
    assert res["loss"] == pytest.approx(F.nll_loss(probs.log(), y).item(), rel=1e-5)
    assert res["top1_err"] == pytest.approx(topk_errors(probs, y)["top1_err"])


def test_evaluate_dense_on_a_global_pool_net_is_the_whole_image_at_each_scale():
    m = TinyGAP().eval()
    x, y = _data(n=9, size=12)
    res = evaluate(m, DataLoader(TensorDataset(x, y), batch_size=5), mode="dense", scales=(12, 16))
    probs = []
    with torch.no_grad():
        for q in (12, 16):
            xs = x if q == 12 else F.interpolate(x, size=(q, q), mode="bilinear", antialias=True)
            probs += [F.softmax(m(xs), 1), F.softmax(m(xs.flip(-1)), 1)]
    probs = torch.stack(probs).mean(0)
    assert res["loss"] == pytest.approx(F.nll_loss(probs.log(), y).item(), rel=1e-5)
    assert res["top1_err"] == pytest.approx(topk_errors(probs, y)["top1_err"])
    # combined: the mean of the 10 crop and the 2 dense softmax outputs at scale 12
    both = evaluate(m, DataLoader(TensorDataset(x, y), batch_size=5), mode="ten_crop+dense",
                    scales=(12,), crop_size=10)
    crops = [x[:, :, t:t + 10, l:l + 10] for t, l in ((0, 0), (0, 2), (2, 0), (2, 2), (1, 1))]
    with torch.no_grad():
        views = [F.softmax(m(v), 1) for c in crops for v in (c, c.flip(-1))]
        views += [F.softmax(m(x), 1), F.softmax(m(x.flip(-1)), 1)]
    combined = torch.stack(views).mean(0)
    assert both["n"] == 9
    assert both["loss"] == pytest.approx(F.nll_loss(combined.log(), y).item(), rel=1e-5)
    with pytest.raises(ValueError, match="unknown evaluation mode"):
        evaluate(m, [], mode="multi")


def test_evaluate_dense_averages_the_score_map_before_softmax():
    m = TinyVGG().eval()
    x, y = _data(n=4, classes=4, size=20)
    res = evaluate(m, DataLoader(TensorDataset(x, y), batch_size=4), mode="dense", flip=False)
    with torch.no_grad():
        f = m.features(x)  # 7x7: the 3x3 window at 5x5 positions, scores averaged (VGG Sec. 3.2)
        scores = torch.stack([m.classifier(f[:, :, i:i + 3, j:j + 3].flatten(1))
                              for i in range(5) for j in range(5)]).mean(0)
    assert res["loss"] == pytest.approx(F.cross_entropy(scores, y).item(), rel=1e-5)


def test_ensemble_predict_and_ensemble_evaluate():
    a, b = TinyGAP(seed=1).eval(), TinyGAP(seed=2).eval()
    x, y = _data(n=20)
    with torch.no_grad():
        expected = (F.softmax(a(x), 1) + F.softmax(b(x), 1)) / 2
    probs = ensemble_predict([a, b], x)
    assert torch.allclose(probs, expected, atol=1e-6)
    assert torch.allclose(probs.sum(1), torch.ones(20))
    res = evaluate([a, b], DataLoader(TensorDataset(x, y), batch_size=7))
    assert res["top1_err"] == pytest.approx(topk_errors(expected, y)["top1_err"])
    assert res["loss"] == pytest.approx(F.nll_loss(expected.log(), y).item(), rel=1e-5)


def test_plot_confusion_writes_pngs(tmp_path):
    g = torch.Generator().manual_seed(0)
    for k in (10, 100):
        m = torch.randint(0, 5, (k, k), generator=g) + 40 * torch.eye(k, dtype=torch.int64)
        path = plot_confusion(m, [f"class {i}" for i in range(k)], tmp_path / f"c{k}.png")
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    with pytest.raises(ValueError):
        plot_confusion(torch.zeros(3, 3), ["a", "b"], tmp_path / "bad.png")
