"""The papers' test protocols: each view cut by hand from the original image, mirrors by
the data's rule, one model and an ensemble, and files that never replace another's."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

import convnets
from convnets.cli import main
from convnets.engine.evaluation import evaluate_protocol
from convnets.engine.protocols import (PROTOCOLS, flips_in_training, get_protocol, protocol_views,
                                       scaled_sizes, views_per_image)
from convnets.engine.runs import evaluate_targets
from convnets.models.conventions import IMAGENET_MEAN, IMAGENET_STD
from convnets.models.layers import ConvNet


def _resized(x, h, w):
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)


def _five(img, c):
    """Top-left, top-right, bottom-left, bottom-right and centre c x c crops, by hand."""
    h, w = img.shape[-2:]
    t, l = (h - c) // 2, (w - c) // 2
    return [img[..., :c, :c], img[..., :c, w - c:], img[..., h - c:, :c], img[..., h - c:, w - c:],
            img[..., t:t + c, l:l + c]]


def _by_hand(x, name):
    """The views of ``x`` (1, 3, 256, 341) under each protocol at a 224 input, each
    constructed from the resized original without the library's helpers."""
    views = []
    mirror = lambda vs: [v for u in vs for v in (u, u.flip(-1))]  # noqa: E731
    if name == "alexnet-10crop":
        square = x[..., :, (341 - 256) // 2:(341 - 256) // 2 + 256]  # shorter side 256 already
        return mirror(_five(square, 224))
    if name == "googlenet-144crop":
        for q in (256, 288, 320, 352):
            r = _resized(x, q, round(341 * q / 256)) if q != 256 else x
            w = r.shape[-1]
            for left in (0, (w - q) // 2, w - q):
                sq = r[..., :, left:left + q]
                views += mirror(_five(sq, 224) + [_resized(sq, 224, 224)])
        return views
    if name == "vgg-multicrop":
        for q in (256, 384, 512):
            r = _resized(x, q, round(341 * q / 256)) if q != 256 else x
            h, w = r.shape[-2:]
            tops = [round(i * (h - 224) / 4) for i in range(5)]
            lefts = [round(i * (w - 224) / 4) for i in range(5)]
            views += mirror([r[..., t:t + 224, l:l + 224] for t in tops for l in lefts])
        return views
    if name == "resnet-multiscale":
        return [_resized(x, q, round(341 * q / 256)) if q != 256 else x
                for q in (224, 256, 384, 480, 640)]
    if name == "centre-320":
        r = _resized(x, 366, round(341 * 366 / 256))
        return [_five(r, 320)[4]]
    raise AssertionError(name)


@pytest.mark.parametrize("name, count", [("alexnet-10crop", 10), ("googlenet-144crop", 144),
                                         ("vgg-multicrop", 150), ("resnet-multiscale", 5),
                                         ("centre-320", 1)])
def test_each_view_is_a_crop_cut_by_hand_from_the_resized_original(name, count):
    x = torch.rand(1, 3, 256, 341, generator=torch.Generator().manual_seed(0))
    protocol = get_protocol(name)
    sides, crop = scaled_sizes(protocol, (224, 224))
    got = [v.image for v in protocol_views(x, protocol, sides, crop, mirrors=protocol.mirrors)]
    expected = _by_hand(x, name)
    assert len(got) == len(expected) == count == views_per_image(protocol, len(sides),
                                                                protocol.mirrors)
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        torch.testing.assert_close(g, e, rtol=0, atol=1e-6)


def test_a_tall_image_gets_its_squares_top_centre_bottom():
    x = torch.rand(1, 3, 50, 30)
    protocol = get_protocol("googlenet-144crop")
    views = list(protocol_views(x, protocol, [30], (20, 20), mirrors=False))
    squares = [x[..., 0:30, :], x[..., 10:40, :], x[..., 20:50, :]]
    for k, sq in enumerate(squares):
        torch.testing.assert_close(views[6 * k].image, sq[..., :20, :20])
        torch.testing.assert_close(views[6 * k + 5].image, _resized(sq, 20, 20))


def test_sizes_scale_with_the_input_and_mirrors_follow_the_training_preset():
    sides, crop = scaled_sizes(get_protocol("alexnet-10crop"), (32, 32))
    assert (sides, crop) == ([37], (32, 32))
    assert flips_in_training("imagenet") and flips_in_training("gunn-cifar")
    assert not flips_in_training("digits") and not flips_in_training("none")
    assert all(p.name == name for name, p in PROTOCOLS.items())


class _Recorder(ConvNet):
    """A global-pool network that remembers every input it was given."""

    classifier_path = "fc"

    def __init__(self, classes=3):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.fc = torch.nn.Linear(6, classes)
        self.seen = []

    def forward_features(self, x):
        self.seen.append(x.clone())
        return self.conv(x).relu()

    def score_map(self, x):
        """The class scores at each position, by hand."""
        return torch.einsum("bchw,kc->bkhw", self.conv(x).relu(), self.fc.weight) \
            + self.fc.bias[None, :, None, None]


@pytest.mark.parametrize("name", ["alexnet-10crop", "googlenet-144crop", "dpn-320-meanmax"])
def test_evaluate_protocol_scores_are_the_mean_softmax_of_the_hand_cut_views(name):
    g = torch.Generator().manual_seed(1)
    images = [torch.rand(3, 24, 32, generator=g), torch.rand(3, 28, 21, generator=g),
              torch.rand(3, 24, 32, generator=g)]
    labels = [0, 2, 1]
    net, protocol = _Recorder(), get_protocol(name)
    loader = [list(zip(images, labels))]
    res = evaluate_protocol(net, loader, protocol, (20, 20), mirrors=protocol.mirrors,
                            batch_size=7)
    assert max(len(x) for x in net.seen) <= 7
    sides, crop = scaled_sizes(protocol, (20, 20))
    probs = []
    with torch.no_grad():
        for img in images:
            views = protocol_views(img[None], protocol, sides, crop, protocol.mirrors)
            if protocol.pool == "mean-max":
                maps = [net.score_map(v.image) for v in views]
                scores = [(m.mean((2, 3)) + m.amax((2, 3))) / 2 for m in maps]
            else:
                scores = [net.score_map(v.image).mean((2, 3)) for v in views]
            probs.append(torch.stack([s.softmax(1) for s in scores]).mean(0))
    probs = torch.cat(probs)
    y = torch.tensor(labels)
    assert res["n"] == 3
    assert res["loss"] == pytest.approx(F.nll_loss(probs.log(), y).item(), rel=1e-5)


# --- through evaluate_targets and the command line ------------------------------------------

@pytest.fixture
def folder(tmp_path):
    """A tiny ImageNet-layout folder: train/ and val/ class folders of non-square PNGs."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 2), ("val", 3)):
        for cls in ("cat", "dog"):
            (tmp_path / "imgs" / split / cls).mkdir(parents=True)
            for i in range(n):
                shape = (40, 53, 3) if i % 2 == 0 else (57, 44, 3)
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(
                    tmp_path / "imgs" / split / cls / f"{i}.png")
    return tmp_path / "imgs"


@pytest.fixture
def weights(tmp_path):
    m = convnets.create_model("resnet20", num_classes=2).eval()
    path = tmp_path / "w.safetensors"
    save_file(m.state_dict(), str(path))
    return m, str(path)


def test_ten_crop_on_a_folder_reads_the_original_not_the_preset_crop(folder, weights, tmp_path):
    model, path = weights
    res = evaluate_targets([path], model="resnet20", data=f"folder:{folder}",
                           protocol="alexnet-10crop", out=str(tmp_path / "out"), device="cpu",
                           batch_size=8, log=lambda _: None)
    assert res["views"]["views_per_image"] == 10 and res["views"]["mirrors"]
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    probs, labels = [], []
    with torch.no_grad():
        for k, cls in enumerate(("cat", "dog")):
            for i in range(3):
                rgb = np.array(Image.open(folder / "val" / cls / f"{i}.png"))
                x = ((torch.from_numpy(rgb).permute(2, 0, 1).float() / 255 - mean) / std)[None]
                h, w = x.shape[-2:]  # shorter side to 37 = 256 x 32/224, central square, 32 crops
                r = _resized(x, round(h * 37 / min(h, w)), round(w * 37 / min(h, w)))
                t, l = (r.shape[-2] - 37) // 2, (r.shape[-1] - 37) // 2
                square = r[..., t:t + 37, l:l + 37]
                views = [v for c in _five(square, 32) for v in (c, c.flip(-1))]
                probs.append(torch.stack([model(v).softmax(1) for v in views]).mean(0))
                labels.append(k)
    probs, y = torch.cat(probs), torch.tensor(labels)
    assert res["loss"] == pytest.approx(F.nll_loss(probs.log(), y).item(), rel=1e-4)
    written = json.load(open(tmp_path / "out" / "eval-alexnet-10crop.json"))
    assert written["protocol"] == "alexnet-10crop" and written["views_per_image"] == 10
    assert written["scales"] == [37] and written["evaluated"]["members"] == [os.path.abspath(path)]


def test_digits_protocols_say_which_views_and_never_replace_another_eval(digits04_run, tmp_path,
                                                                        capsys):
    run = digits04_run
    assert main(["eval", run, "--out", str(tmp_path)]) == 0
    centre = json.load(open(tmp_path / "eval.json"))
    assert centre["protocol"] == "center"
    capsys.readouterr()
    assert main(["eval", run, "--protocol", "alexnet-10crop", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # the digits never flip in training: 5 crops, no mirrors, and the output says so
    assert "alexnet-10crop: 5 views per image (8x8 crops, shorter sides 9; no mirrors: the " \
           "digits preset never flips in training)" in out.splitlines()[0]
    assert json.load(open(tmp_path / "eval.json")) == centre
    ten = json.load(open(tmp_path / "eval-alexnet-10crop.json"))
    assert ten["views_per_image"] == 5 and ten["mirrors"] is False
    # the same evaluation again replaces its own file; an ensemble takes the next name
    assert main(["eval", run, "--protocol", "alexnet-10crop", "--out", str(tmp_path)]) == 0
    assert not (tmp_path / "eval-alexnet-10crop-2.json").exists()
    assert main(["eval", run, run, "--protocol", "alexnet-10crop", "--out", str(tmp_path)]) == 0
    both = json.load(open(tmp_path / "eval-alexnet-10crop-2.json"))
    assert both["members"] == 2 and (tmp_path / "confusion-alexnet-10crop-2.png").exists()
    assert json.load(open(tmp_path / "eval-alexnet-10crop.json")) == ten


def test_an_ensemble_writes_beside_its_members_never_into_them(digits04_run, capsys):
    before = set(os.listdir(digits04_run))
    res = evaluate_targets([digits04_run, digits04_run], protocol="googlenet-1crop",
                           device="cpu", log=lambda _: None)
    assert set(os.listdir(digits04_run)) == before
    assert os.path.dirname(res["out"]) == os.path.dirname(os.path.abspath(digits04_run))
    assert os.path.basename(res["files"][0]) == "eval-googlenet-1crop.json"


def test_every_model_names_a_known_protocol_and_info_prints_it(capsys):
    from convnets.models import list_models, model_info

    assert {model_info(n).protocol for n in list_models()} <= set(PROTOCOLS)
    assert model_info("zfnet").protocol == "alexnet-10crop"
    assert model_info("resnet50").protocol == "resnet-multiscale"
    assert model_info("resnet20").protocol == "center"
    assert main(["info", "googlenet"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("protocol"))
    assert "googlenet-144crop" in line and "Szegedy et al. 2015, Sec. 7" in line


def test_resnet_multiscale_equals_a_hand_written_loop(folder, tmp_path):
    """torchvision's (seeded, random) initialisation of ResNet-18 through
    resnet-multiscale, at small shorter sides, against a loop written out here
    (benchmarks/check_resnet50_multiscale.py does the same for ResNet-50 at 224..640)."""
    import torchvision

    torch.manual_seed(0)
    model = convnets.create_model("resnet18", num_classes=2)
    model.load_state_dict(torchvision.models.resnet18(num_classes=2).state_dict())
    model.eval()
    path = tmp_path / "r18.safetensors"
    save_file(model.state_dict(), str(path))
    sides = [32, 40, 56]
    res = evaluate_targets([str(path)], model="resnet18", data=f"folder:{folder}",
                           protocol="resnet-multiscale", scales=sides, device="cpu",
                           batch_size=4, log=lambda _: None)
    assert res["views"]["views_per_image"] == 3 and not res["views"]["mirrors"]
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    losses, hits = [], 0
    with torch.no_grad():
        for k, cls in enumerate(("cat", "dog")):
            for i in range(3):
                rgb = np.array(Image.open(folder / "val" / cls / f"{i}.png"))
                x = ((torch.from_numpy(rgb).permute(2, 0, 1).float() / 255 - mean) / std)[None]
                h, w = x.shape[-2:]
                probs = torch.stack([
                    model(_resized(x, round(h * q / min(h, w)), round(w * q / min(h, w)))).softmax(1)
                    for q in sides]).mean(0)[0]
                losses.append(-probs[k].log().item())
                hits += int(probs.argmax().item() == k)
    assert res["loss"] == pytest.approx(sum(losses) / 6, rel=1e-5)
    assert res["top1_err"] == pytest.approx(100 * (1 - hits / 6))


@pytest.mark.parametrize("name", [n for n in PROTOCOLS if n != "center"])
def test_every_protocol_runs_on_a_folder_as_an_ensemble_and_on_the_digits(name, folder, weights,
                                                                         digits04_run, tmp_path):
    _, path = weights
    protocol = get_protocol(name)
    res = evaluate_targets([path, path], model="resnet20", data=f"folder:{folder}", protocol=name,
                           out=str(tmp_path / "folder"), device="cpu", batch_size=16,
                           log=lambda _: None)
    sides, _ = scaled_sizes(protocol, (32, 32))
    assert res["n"] == 6 and res["members"] == 2
    assert res["views"]["views_per_image"] == views_per_image(protocol, len(sides), protocol.mirrors)
    digits = evaluate_targets([digits04_run], protocol=name, out=str(tmp_path / "digits"),
                              device="cpu", batch_size=256, log=lambda _: None)
    assert digits["views"]["mirrors"] is False and digits["n"] > 100
    assert digits["views"]["views_per_image"] == views_per_image(protocol, len(sides), False)


def test_the_progress_bar_counts_images(capsys):
    from torch.utils.data import DataLoader

    net = _Recorder()
    images = [(torch.rand(3, 12, 16), k % 3) for k in range(4)]
    loader = DataLoader(images, batch_size=2, collate_fn=list)
    evaluate_protocol([net, net], loader, get_protocol("alexnet-10crop"), (8, 8),
                      mirrors=True, progress=True)
    err = capsys.readouterr().err
    assert "alexnet-10crop" in err and "0/4" in err.replace(" ", "")
