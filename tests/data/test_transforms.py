"""The augmentation presets, checked against step-by-step recomputation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms as v1

from torchvision.transforms import v2

from convnets.data import Lighting, build_transform, list_presets
from convnets.data.transforms import (IMAGENET_EIGVAL, IMAGENET_EIGVEC, ColorJitter, Jigsaw,
                                      MatchChannels)

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
    assert {"cifar", "gunn-cifar", "imagenet", "fb-resnet", "alexnet", "digits"} <= set(presets)
    assert all(isinstance(d, str) and d and "\n" not in d for d in presets.values())
    with pytest.raises(ValueError, match="preset .nope. is unknown"):
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


def _steps(pipeline) -> list:
    """The steps of a preset's pipeline, colour steps unwrapped from their RGB-only guard."""
    return [getattr(t, "inner", t) for t in pipeline.transforms]


# --- the GUNN authors' CIFAR augmentation (datasets/cifar10.lua, transforms.lua) -----------

def test_jigsaw_is_a_circular_shift_by_the_drawn_amount():
    img = torch.arange(2 * 5 * 8, dtype=torch.float32).view(2, 5, 8)  # C=2, H=5, W=8
    seen = set()
    for seed in range(40):
        out = Jigsaw(generator=torch.Generator().manual_seed(seed))(img)
        g = torch.Generator().manual_seed(seed)  # the same draws, in the same order
        if torch.rand((), generator=g).item() >= 2 / 3:
            assert torch.equal(out, img)
            seen.add("kept")
            continue
        along_width = torch.rand((), generator=g).item() < 0.5
        size = 8 if along_width else 5
        d = int(torch.randint(1, size + 1, (), generator=g))
        for c in range(2):  # transforms.lua: the first d columns (rows) move behind the rest
            for r in range(5):
                for k in range(8):
                    src = (c, r, (k + d) % 8) if along_width else (c, (r + d) % 5, k)
                    assert out[c, r, k] == img[src]
        seen.add(("width" if along_width else "height", d == size))
    assert {"kept", ("width", False), ("height", False)} <= seen


def test_jigsaw_shifts_two_thirds_of_images_half_along_each_axis():
    img = torch.arange(5 * 8, dtype=torch.float32).view(1, 5, 8)
    jig, n = Jigsaw(generator=torch.Generator().manual_seed(0)), 6000
    kept, width, height = 0, [0] * 8, [0] * 5
    for _ in range(n):
        first = int(jig(img)[0, 0, 0])  # img[0, r, c] = 8r + c identifies the shift
        if first == 0:
            kept += 1
        elif first < 8:
            width[first] += 1
        else:
            height[first // 8] += 1
    # P(unchanged) = 1/3 + 1/3 * (1/8) + 1/3 * (1/5): d equal to the size is no shift.
    p_kept = 1 / 3 + 1 / 24 + 1 / 15
    assert abs(kept / n - p_kept) < 4 * math.sqrt(p_kept * (1 - p_kept) / n)
    for counts, size in ((width, 8), (height, 5)):
        p = 1 / 3 / size  # each d in 1..size-1
        for d in range(1, size):
            assert abs(counts[d] / n - p) < 4 * math.sqrt(p * (1 - p) / n), (size, d)


def test_gunn_cifar_preset_normalises_then_flips_crops_and_jigsaws():
    t = build_transform("gunn-cifar", train=True, input_size=(3, 32, 32), mean=MEAN, std=STD)
    kinds = [type(s) for s in _steps(t)]
    i = kinds.index(v2.Normalize)
    assert kinds[i + 1:i + 4] == [v2.RandomHorizontalFlip, v2.RandomCrop, Jigsaw]
    crop = _steps(t)[i + 2]
    assert crop.padding == [4, 4, 4, 4] and crop.fill == 0 and crop.padding_mode == "constant"
    assert _steps(t)[i + 3].p == pytest.approx(2 / 3)
    evalt = build_transform("gunn-cifar", train=False, input_size=(3, 32, 32), mean=MEAN, std=STD)
    img = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    assert torch.allclose(_unnormalise(evalt(img)), img.float() / 255, atol=1e-6)


def test_gunn_cifar_pads_with_the_mean_colour_and_shifts_after_cropping():
    """On a one-colour image the padding shows as bands of exact zeros (the mean colour
    after normalisation). The crop puts them at the border; only a shift after the crop
    can move a band inside the image, with image on both sides of it."""
    img = torch.full((3, 32, 32), 200, dtype=torch.uint8)
    t = build_transform("gunn-cifar", train=True, input_size=(3, 32, 32), mean=MEAN, std=STD)
    colour = (200 / 255 - torch.tensor(MEAN)) / torch.tensor(STD)
    torch.manual_seed(0)
    inside = 0
    for _ in range(60):
        out = t(img)
        pad = (out == 0).all(0)
        assert torch.allclose(out[:, ~pad], colour.view(3, 1).expand(3, int((~pad).sum())))
        cols, rows = pad.all(0), pad.all(1)
        for line in (cols, rows):
            runs = torch.nonzero(line[1:] != line[:-1]).flatten()
            inside += bool(line[0] == 0 and line[-1] == 0 and line.any())
            assert len(runs) <= 4
    assert inside > 0
    plain = build_transform("cifar", train=True, input_size=(3, 32, 32), mean=MEAN, std=STD)
    black = -torch.tensor(MEAN) / torch.tensor(STD)  # the plain preset pads with black
    torch.manual_seed(1)
    outs = [plain(img) for _ in range(10)]
    assert any(torch.isclose(o[:, 0, 0], black).all() or torch.isclose(o[:, -1, -1], black).all()
               for o in outs)


# --- fb.resnet.torch's ImageNet augmentation (datasets/imagenet.lua, transforms.lua) -------

def test_fb_resnet_preset_has_the_torch_codes_steps_and_parameters():
    t = build_transform("fb-resnet", train=True, input_size=(3, 224, 224), mean=MEAN, std=STD)
    steps = _steps(t)
    crop = next(s for s in steps if isinstance(s, v2.RandomResizedCrop))
    assert crop.size == (224, 224) and crop.scale == (0.08, 1.0)
    assert crop.ratio == pytest.approx((3 / 4, 4 / 3))
    assert crop.interpolation == v2.InterpolationMode.BICUBIC
    assert any(isinstance(s, v2.RandomHorizontalFlip) and s.p == 0.5 for s in steps)
    kinds = [type(s) for s in steps]
    # imagenet.lua: RandomSizedCrop, ColorJitter, Lighting, ColorNormalize (flip commutes)
    assert kinds.index(ColorJitter) < kinds.index(Lighting) < kinds.index(v2.Normalize)
    jitter, light = steps[kinds.index(ColorJitter)], steps[kinds.index(Lighting)]
    assert (jitter.brightness, jitter.contrast, jitter.saturation) == (0.4, 0.4, 0.4)
    assert light.alphastd == 0.1
    assert light.eigval.tolist() == pytest.approx(list(IMAGENET_EIGVAL))
    img = Image.fromarray(np.random.default_rng(3).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    assert t(img).shape == (3, 224, 224)
    # eval: Scale(256), bicubic as the Torch code's default, and the centre 224 crop
    evalt = build_transform("fb-resnet", train=False, input_size=(3, 224, 224), mean=MEAN, std=STD)
    assert not any(isinstance(s, (ColorJitter, Lighting)) for s in _steps(evalt))
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float()
    ref = F.interpolate(x, size=(256, 341), mode="bicubic", antialias=True, align_corners=False)
    ref = v1.CenterCrop(224)(ref[0].clamp(0, 255).round() / 255)
    diff = (_unnormalise(evalt(img)) - ref).abs() * 255
    # torchvision's uint8 bicubic kernel rounds between its two passes: up to 20 levels at
    # the overshoots of this noise image, 0.25 on average; a crop one pixel off or a
    # bilinear resize differs by tens of levels on average.
    assert diff.median() < 1e-3 and diff.mean() < 0.5


def _luma(img):
    return 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]


def test_color_jitter_blends_with_the_torch_codes_references_in_random_order():
    img = torch.rand(3, 6, 5)
    names = ["brightness", "contrast", "saturation"]
    for seed in range(6):
        out = ColorJitter(0.4, 0.4, 0.4, generator=torch.Generator().manual_seed(seed))(img)
        g = torch.Generator().manual_seed(seed)  # randperm, then one U(-0.4, 0.4) per step
        ref = img.double()
        for k in torch.randperm(3, generator=g).tolist():
            alpha = 1 + torch.empty(()).uniform_(-0.4, 0.4, generator=g).item()
            target = {"brightness": torch.zeros_like(ref[0]),
                      "contrast": torch.full_like(ref[0], _luma(ref).mean().item()),
                      "saturation": _luma(ref)}[names[k]]
            ref = alpha * ref + (1 - alpha) * target
        torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6)


def test_color_jitter_steps_one_at_a_time():
    img = torch.rand(3, 4, 4)
    g = torch.Generator().manual_seed(5)
    out = ColorJitter(0.4, 0, 0, generator=torch.Generator().manual_seed(5))(img)
    torch.randperm(1, generator=g)
    alpha = 1 + torch.empty(()).uniform_(-0.4, 0.4, generator=g).item()
    torch.testing.assert_close(out, alpha * img)  # brightness scales every value
    out = ColorJitter(0, 0, 0.4, generator=torch.Generator().manual_seed(5))(img)
    torch.testing.assert_close(_luma(out), _luma(img), rtol=1e-5, atol=1e-6)  # luma is kept
    out = ColorJitter(0, 0.4, 0, generator=torch.Generator().manual_seed(5))(img)
    assert _luma(out).mean().item() == pytest.approx(_luma(img).mean().item(), abs=1e-6)


def test_color_jitter_does_not_clamp_unlike_torchvision():
    img = torch.full((3, 2, 2), 0.9)
    seeds = [s for s in range(20)
             if ColorJitter(0.4, 0, 0, generator=torch.Generator().manual_seed(s))(img).max() > 1]
    assert seeds  # brightness up to 1.4 takes 0.9 to 1.26: the Torch code keeps it
    assert v2.ColorJitter(brightness=(1.3, 1.3))(img).max() == 1.0


def test_imagenet_preset_describes_only_what_it_does():
    text = list_presets()["imagenet"]
    assert "no colour" in text and "bilinear" in text
    t = build_transform("imagenet", train=True, input_size=(3, 64, 64), mean=MEAN, std=STD)
    assert not any(isinstance(s, (ColorJitter, Lighting)) for s in _steps(t))


def test_jigsaw_and_color_jitter_draw_per_image_in_a_batch():
    imgs = torch.rand(1, 3, 6, 6).expand(8, 3, 6, 6).contiguous()
    for op in (Jigsaw(generator=torch.Generator().manual_seed(0)),
               ColorJitter(generator=torch.Generator().manual_seed(0))):
        out = op(imgs)
        assert out.shape == imgs.shape
        assert len({tuple(o.flatten().tolist()) for o in out}) > 2  # not one draw for all
