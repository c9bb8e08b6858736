"""The augmentation presets, checked against step-by-step recomputation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms as v1

from convnets.data import Lighting, build_transform, list_presets
from convnets.data.transforms import IMAGENET_EIGVAL, IMAGENET_EIGVEC, MatchChannels

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _close_up_to_rounding(x, ref):
    """Equal but for uint8 rounding (torchvision's v1 and v2 uint8 resize kernels round
    differently): within one grey level everywhere. On these noise images a crop one
    pixel off, or a different resize, differs by tens of levels on average."""
    diff = (_unnormalise(x) - _unnormalise(ref)).abs() * 255
    return x.shape == ref.shape and diff.max() <= 1 + 1e-3 and diff.mean() < 0.3


def _unnormalise(x, mean=MEAN, std=STD):
    return x * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)


def test_list_presets_describes_each():
    presets = list_presets()
    assert {"cifar", "imagenet", "alexnet", "digits"} <= set(presets)
    assert all(isinstance(d, str) and d and "\n" not in d for d in presets.values())
    with pytest.raises(ValueError, match="unknown transform preset"):
        build_transform("nope", train=True, input_size=(3, 32, 32), mean=MEAN, std=STD)


def test_lighting_adds_the_pca_offset_to_every_pixel():
    # the published ImageNet eigen-decomposition (fb.resnet.torch; AlexNet Sec. 4.1)
    assert IMAGENET_EIGVAL == (0.2175, 0.0188, 0.0045)
    assert IMAGENET_EIGVEC[0] == (-0.5675, 0.7192, 0.4009)
    img = torch.rand(3, 5, 7)
    out = Lighting(0.1, generator=torch.Generator().manual_seed(3))(img)
    alpha = torch.randn(3, generator=torch.Generator().manual_seed(3)) * 0.1
    ev, V = np.array(IMAGENET_EIGVAL), np.array(IMAGENET_EIGVEC)
    rgb = [sum(V[i, j] * alpha[j].item() * ev[j] for j in range(3)) for i in range(3)]
    delta = out - img
    for c in range(3):
        assert torch.allclose(delta[c], torch.full((5, 7), rgb[c]), atol=1e-6)
    assert abs(rgb[0]) > 1e-4  # the draw is not trivially zero


def test_lighting_draws_per_image_in_a_batch():
    imgs = torch.zeros(4, 3, 2, 2)
    out = Lighting(0.1, generator=torch.Generator().manual_seed(0))(imgs)
    alpha = torch.randn(4, 3, generator=torch.Generator().manual_seed(0)) * 0.1
    V, ev = torch.tensor(IMAGENET_EIGVEC), torch.tensor(IMAGENET_EIGVAL)
    for b in range(4):
        assert torch.allclose(out[b, :, 1, 1], V @ (alpha[b] * ev), atol=1e-7)
    assert not torch.allclose(out[0], out[1])


def test_alexnet_preset_uses_lighting_in_training_only():
    train = build_transform("alexnet", train=True, input_size=(3, 224, 224), mean=MEAN, std=STD)
    evalt = build_transform("alexnet", train=False, input_size=(3, 224, 224), mean=MEAN, std=STD)
    assert "Lighting" in repr(train) and "Lighting" not in repr(evalt)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    assert train(img).shape == (3, 224, 224)
    # eval: shorter side to 256, centre 224 crop; the same steps with torchvision's v1 API
    ref = v1.Compose([v1.PILToTensor(), v1.Resize(256, antialias=True), v1.CenterCrop(224),
                      v1.ConvertImageDtype(torch.float32), v1.Normalize(MEAN, STD)])(img)
    assert _close_up_to_rounding(evalt(img), ref)


def test_imagenet_preset_sizes_scale_with_input():
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (150, 200, 3), dtype=np.uint8))
    evalt = build_transform("imagenet", train=False, input_size=(3, 112, 112), mean=MEAN, std=STD)
    ref = v1.Compose([v1.PILToTensor(), v1.Resize(128, antialias=True), v1.CenterCrop(112),
                      v1.ConvertImageDtype(torch.float32), v1.Normalize(MEAN, STD)])(img)
    assert _close_up_to_rounding(evalt(img), ref)
    train = build_transform("imagenet", train=True, input_size=(3, 96, 64), mean=MEAN, std=STD)
    assert train(img).shape == (3, 96, 64)


def test_full_preset_keeps_the_uncropped_square_for_multi_view_evaluation():
    img = Image.fromarray(np.random.default_rng(2).integers(0, 256, (150, 200, 3), dtype=np.uint8))
    t = build_transform("full", train=False, input_size=(3, 112, 112), mean=MEAN, std=STD)
    ref = v1.Compose([v1.PILToTensor(), v1.Resize(128, antialias=True), v1.CenterCrop(128),
                      v1.ConvertImageDtype(torch.float32), v1.Normalize(MEAN, STD)])(img)
    assert _close_up_to_rounding(t(img), ref)


def test_cifar_train_is_a_shifted_window_of_the_padded_image_maybe_mirrored():
    img = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    t = build_transform("cifar", train=True, input_size=(3, 32, 32), mean=MEAN, std=STD)
    padded = F.pad(img.float() / 255, (4, 4, 4, 4))
    windows = [w for dy in range(9) for dx in range(9)
               for w in (padded[:, dy:dy + 32, dx:dx + 32], padded[:, dy:dy + 32, dx:dx + 32].flip(-1))]
    torch.manual_seed(0)
    seen_shift = False
    for _ in range(6):
        out = _unnormalise(t(img))
        match = [k for k, w in enumerate(windows) if torch.allclose(out, w, atol=1e-5)]
        assert match, "output is not a 32x32 window of the 4-padded image or its mirror"
        seen_shift |= match[0] // 2 != 40  # 40 = the unshifted window
    assert seen_shift
    evalt = build_transform("cifar", train=False, input_size=(3, 32, 32), mean=MEAN, std=STD)
    assert torch.allclose(_unnormalise(evalt(img)), img.float() / 255, atol=1e-6)


def test_channel_matching():
    grey = torch.rand(1, 4, 4)
    assert torch.equal(MatchChannels(3)(grey), grey.expand(3, 4, 4))
    rgb = torch.rand(3, 4, 4)
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    assert torch.allclose(MatchChannels(1)(rgb)[0], luma, atol=1e-6)
    t = build_transform("none", train=False, input_size=(1, 4, 4), mean=MEAN, std=STD)
    m, s = 0.299 * 0.5 + 0.587 * 0.4 + 0.114 * 0.3, 0.299 * 0.2 + 0.587 * 0.25 + 0.114 * 0.3
    assert torch.allclose(t(rgb)[0], (luma - m) / s, atol=1e-5)


def test_digits_preset_resizes_bilinearly_and_normalises():
    img = torch.rand(1, 8, 8)
    t = build_transform("digits", train=False, input_size=(3, 24, 24), mean=[0.3], std=[0.4])
    ref = (F.interpolate(img[None], size=(24, 24), mode="bilinear", align_corners=False)[0] - 0.3) / 0.4
    out = t(img)
    assert out.shape == (3, 24, 24) and torch.allclose(out[2], ref[0], atol=1e-5)
