"""The papers' presets for VGG, the ResNet paper, the Inception line, WRN, DenseNet and
DPN: each checked for its geometry and its statistics against the paper's numbers."""
from __future__ import annotations

import colorsys

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from convnets.data import build_transform
from convnets.data import augment
from convnets.data.augment import (INCEPTION_INTERPOLATIONS, CentralFraction, InceptionCrop,
                                   RandomShorterSide, ShorterSideResize)
from convnets.data.colour import (Lighting, PhotometricDistortions, RandomHSL, hls_to_rgb,
                                  rgb_to_hls, scale_saturation)
from convnets.data.transforms import PRESETS, Jigsaw

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _steps(pipeline) -> list:
    return [getattr(t, "inner", t) for t in pipeline.transforms]


def _unnormalise(x):
    return x * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)


def _shorter_sides(step, draws=200):
    img = torch.randint(0, 256, (3, 12, 18), dtype=torch.uint8)
    return torch.tensor([min(step(img).shape[-2:]) for _ in range(draws)])


def _spread_over(sides, low, high, bins=4):
    """In [low, high], reaching near both ends, and about uniform over ``bins`` bins."""
    assert sides.min() >= low and sides.max() <= high
    span = high - low
    assert sides.min() <= low + span * 0.05 and sides.max() >= high - span * 0.05
    counts = torch.histc(sides.float(), bins=bins, min=low, max=high + 1)
    expected = len(sides) / bins
    assert (counts > expected * 0.6).all() and (counts < expected * 1.4).all(), counts


# --- VGG (Simonyan & Zisserman 2015, Sec. 3.1 and 4.1) -------------------------------------

def test_vgg_jitter_draws_the_shorter_side_over_256_to_512():
    torch.manual_seed(0)
    t = build_transform("vgg-jitter", train=True, input_size=(3, 224, 224), mean=MEAN, std=STD)
    jitter = _steps(t)[1]
    assert isinstance(jitter, RandomShorterSide) and (jitter.low, jitter.high) == (256, 512)
    _spread_over(_shorter_sides(jitter), 256, 512)
    # a smaller model scales the range with its input: 112 -> [128, 256]
    small = build_transform("vgg-jitter", train=True, input_size=(3, 112, 112), mean=MEAN, std=STD)
    _spread_over(_shorter_sides(_steps(small)[1]), 128, 256)


@pytest.mark.parametrize("preset, side", [("vgg-s256", 256), ("vgg-s384", 384)])
def test_vgg_fixed_scales_train_on_random_crops_of_the_s_scaled_image(preset, side):
    t = build_transform(preset, train=True, input_size=(3, 224, 224), mean=MEAN, std=STD)
    steps = _steps(t)
    assert isinstance(steps[1], ShorterSideResize) and steps[1].size == side
    assert _shorter_sides(steps[1], draws=3).tolist() == [side] * 3
    kinds = [type(s) for s in steps]
    assert kinds[2:4] == [v2.RandomCrop, v2.RandomHorizontalFlip]
    assert isinstance(steps[kinds.index(Lighting)], Lighting) and steps[kinds.index(Lighting)].alphastd == 0.1
    assert t(torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8)).shape == (3, 224, 224)


@pytest.mark.parametrize("preset, q", [("vgg-s256", 256), ("vgg-s384", 384), ("vgg-jitter", 384)])
def test_vgg_evaluates_the_centre_crop_at_the_test_scale_q(preset, q):
    img = torch.randint(0, 256, (3, 30, 40), dtype=torch.uint8)
    evalt = build_transform(preset, train=False, input_size=(3, 224, 224), mean=MEAN, std=STD)
    assert not any(isinstance(s, Lighting) for s in _steps(evalt))
    ref = v2.CenterCrop(224)(v2.Resize(q, antialias=True)(img)).float() / 255
    torch.testing.assert_close(_unnormalise(evalt(img)), ref, atol=1e-5, rtol=0)


# --- the ResNet paper (He et al. 2016, Sec. 3.4) ------------------------------------------

def test_resnet_paper_jitters_over_256_to_480_with_pca_lighting():
    torch.manual_seed(1)
    t = build_transform("resnet-paper", train=True, input_size=(3, 224, 224), mean=MEAN, std=STD)
    steps = _steps(t)
    _spread_over(_shorter_sides(steps[1]), 256, 480)
    assert [type(s) for s in steps[2:4]] == [v2.RandomCrop, v2.RandomHorizontalFlip]
    assert any(isinstance(s, Lighting) and s.alphastd == 0.1 for s in steps)
    img = torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8)
    evalt = build_transform("resnet-paper", train=False, input_size=(3, 224, 224), mean=MEAN, std=STD)
    imagenet = build_transform("imagenet", train=False, input_size=(3, 224, 224), mean=MEAN, std=STD)
    torch.testing.assert_close(evalt(img), imagenet(img))


# --- GoogLeNet and Inception (Szegedy et al. 2015, Sec. 6; TF-slim) -----------------------

def test_inception_crop_samples_the_papers_areas_aspects_and_interpolations(monkeypatch):
    seen = []
    real = augment._interpolate

    def recording(patch, size, mode):
        seen.append((patch.shape[-2], patch.shape[-1], mode))
        return real(patch, size, mode)

    monkeypatch.setattr(augment, "_interpolate", recording)
    torch.manual_seed(2)
    t = build_transform("inception", train=True, input_size=(3, 32, 32), mean=MEAN, std=STD)
    crop = _steps(t)[1]
    assert isinstance(crop, InceptionCrop) and crop.scale == (0.08, 1.0)
    img = torch.randint(0, 256, (3, 200, 200), dtype=torch.uint8)
    for _ in range(400):
        assert t(img).shape == (3, 32, 32)
    area = torch.tensor([h * w / 200 ** 2 for h, w, _ in seen])
    aspect = torch.tensor([w / h for h, w, _ in seen])
    assert area.min() >= 0.08 - 0.01 and area.max() <= 1.0 and area.min() < 0.15 and area.max() > 0.85
    assert aspect.min() >= 3 / 4 - 0.02 and aspect.max() <= 4 / 3 + 0.02
    assert aspect.min() < 0.8 and aspect.max() > 1.25
    modes = [m for _, _, m in seen]
    assert set(modes) == set(INCEPTION_INTERPOLATIONS) == {"bilinear", "area", "nearest", "bicubic"}
    assert all(60 < modes.count(m) < 140 for m in INCEPTION_INTERPOLATIONS)


def test_inception_resizes_with_the_drawn_method_and_keeps_uint8():
    img = torch.randint(0, 256, (3, 20, 20), dtype=torch.uint8)
    crop = InceptionCrop((8, 8), scale=(1.0, 1.0), ratio=(1.0, 1.0), interpolations=("nearest",))
    out = crop(img)
    assert out.dtype == torch.uint8
    assert torch.equal(out, F.interpolate(img[None].float(), size=(8, 8), mode="nearest")[0].to(torch.uint8))
    area = InceptionCrop((5, 5), scale=(1.0, 1.0), ratio=(1.0, 1.0), interpolations=("area",))
    ref = F.avg_pool2d(img[None].float(), 4)[0].round().to(torch.uint8)
    assert torch.equal(area(img), ref)


def _uniform(g, low, high):
    return torch.empty(()).uniform_(low, high, generator=g).item()


def _hsv_map(img, fn):
    pixels = img.permute(1, 2, 0).reshape(-1, 3).tolist()
    out = [colorsys.hsv_to_rgb(*fn(*colorsys.rgb_to_hsv(*p))) for p in pixels]
    return torch.tensor(out, dtype=img.dtype).T.reshape(img.shape)


def test_photometric_distortions_are_tf_slims_steps_in_the_drawn_order():
    img = torch.rand(3, 5, 6)
    for seed in range(8):
        out = PhotometricDistortions(generator=torch.Generator().manual_seed(seed))(img)
        g = torch.Generator().manual_seed(seed)
        order = PhotometricDistortions.ORDERS[int(torch.randint(4, (), generator=g))]
        ref = img
        for step in order:
            if step == "brightness":
                ref = ref + _uniform(g, -32 / 255, 32 / 255)
            elif step == "saturation":
                f = _uniform(g, 0.5, 1.5)
                ref = _hsv_map(ref, lambda h, s, v: (h, min(1.0, s * f), v))
            elif step == "hue":
                d = _uniform(g, -0.2, 0.2)
                ref = _hsv_map(ref, lambda h, s, v: ((h + d) % 1.0, s, v))
            else:
                m = ref.mean((1, 2), keepdim=True)
                ref = (ref - m) * _uniform(g, 0.5, 1.5) + m
            ref = ref.clamp(0, 1)
        torch.testing.assert_close(out, ref, atol=2e-5, rtol=0)


def test_photometric_distortions_use_all_four_orders():
    g = torch.Generator().manual_seed(0)
    drawn = [int(torch.randint(4, (), generator=g)) for _ in range(200)]
    assert all(30 < drawn.count(k) < 70 for k in range(4))
    assert len({frozenset(o) for o in PhotometricDistortions.ORDERS}) == 1  # the same 4 steps


def test_scale_saturation_is_hsv_saturation_times_the_factor_capped():
    img = torch.rand(3, 4, 4)
    for f in (0.3, 1.7, 5.0):
        ref = _hsv_map(img, lambda h, s, v: (h, min(1.0, s * f), v))
        torch.testing.assert_close(scale_saturation(img, f), ref, atol=1e-6, rtol=0)


def test_inception_evaluates_the_central_seven_eighths_resized():
    img = torch.randint(0, 256, (3, 64, 80), dtype=torch.uint8)
    evalt = build_transform("inception", train=False, input_size=(3, 28, 28), mean=MEAN, std=STD)
    assert isinstance(_steps(evalt)[1], CentralFraction)
    centre = img[:, 4:60, 5:75]  # int((64 - 56) / 2) = 4, int((80 - 70) / 2) = 5
    ref = v2.Resize((28, 28), antialias=False)(centre).float() / 255
    torch.testing.assert_close(_unnormalise(evalt(img)), ref, atol=1e-5, rtol=0)


# --- WRN and DenseNet on CIFAR --------------------------------------------------------------

def test_wrn_cifar_is_a_window_of_the_reflection_padded_image_maybe_mirrored():
    img = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    t = build_transform("wrn-cifar", train=True, input_size=(3, 32, 32), mean=MEAN, std=STD)
    padded = F.pad(img[None].float() / 255, (4, 4, 4, 4), mode="reflect")[0]
    windows = [w for dy in range(9) for dx in range(9)
               for w in (padded[:, dy:dy + 32, dx:dx + 32], padded[:, dy:dy + 32, dx:dx + 32].flip(-1))]
    torch.manual_seed(0)
    shifted = 0
    for _ in range(8):
        out = _unnormalise(t(img))
        match = [k for k, w in enumerate(windows) if torch.allclose(out, w, atol=1e-5)]
        assert match, "not a window of the reflection-padded image or its mirror"
        shifted += match[0] // 2 != 40
    assert shifted
    evalt = build_transform("wrn-cifar", train=False, input_size=(3, 32, 32), mean=MEAN, std=STD)
    torch.testing.assert_close(_unnormalise(evalt(img)), img.float() / 255, atol=1e-6, rtol=0)


def test_densenet_cifar_is_gunn_cifar_without_the_jigsaw():
    t = build_transform("densenet-cifar", train=True, input_size=(3, 32, 32), mean=MEAN, std=STD)
    kinds = [type(s) for s in _steps(t)]
    i = kinds.index(v2.Normalize)
    assert kinds[i + 1:] [:2] == [v2.RandomHorizontalFlip, v2.RandomCrop] and Jigsaw not in kinds
    assert _steps(t)[i + 2].padding == [4, 4, 4, 4] and _steps(t)[i + 2].fill == 0
    # the padding is the mean colour: zeros after normalisation, at the border only
    img = torch.full((3, 32, 32), 200, dtype=torch.uint8)
    torch.manual_seed(3)
    padded_some = False
    for _ in range(20):
        pad = (t(img) == 0).all(0)
        rows, cols = pad.all(1), pad.all(0)
        assert (pad == (rows[:, None] | cols[None, :])).all()
        for line in (rows, cols):  # bands touch the border: no shift moved one inside
            inner = line[1:-1]
            assert not (inner.any() and not line[0] and not line[-1])
        padded_some |= bool(pad.any())
    assert padded_some


# --- DPN (cypw/DPNs; MXNet's random HSL) ----------------------------------------------------

def test_rgb_to_hls_and_back_match_colorsys():
    img = torch.rand(3, 6, 6)
    hls = rgb_to_hls(img)
    ref = torch.tensor([colorsys.rgb_to_hls(*p) for p in img.permute(1, 2, 0).reshape(-1, 3).tolist()])
    torch.testing.assert_close(hls.permute(1, 2, 0).reshape(-1, 3), ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(hls_to_rgb(hls), img, atol=1e-6, rtol=0)


def test_random_hsl_offsets_lie_in_dpns_ranges_and_are_spread_over_them():
    grey = torch.full((3, 2, 2), 0.5)
    grey[0] = 0.7  # a pinkish grey: hue 0 of 1, lightness 0.6, saturation 0.5
    base = rgb_to_hls(grey)[:, 0, 0]
    hsl = RandomHSL(20, 40, 50, generator=torch.Generator().manual_seed(0))
    offsets = torch.stack([rgb_to_hls(hsl(grey))[:, 0, 0] - base for _ in range(300)])
    light, sat = offsets[:, 1], offsets[:, 2]
    for values, span in ((light, 50 / 255), (sat, 40 / 255)):
        assert values.abs().max() <= span + 1e-5
        assert values.min() < -0.9 * span and values.max() > 0.9 * span
        assert abs(float((values > 0).float().mean()) - 0.5) < 0.1
    # MXNet clamps the hue at the ends of its range: red's hue 0 only moves up
    hue = offsets[:, 0]
    assert hue.min() >= -1e-6 and hue.max() <= 20 / 180 + 1e-5 and hue.max() > 0.9 * 20 / 180


def test_dpn_preset_has_the_readmes_steps():
    t = build_transform("dpn", train=True, input_size=(3, 224, 224), mean=MEAN, std=STD)
    steps = _steps(t)
    crop = next(s for s in steps if isinstance(s, v2.RandomResizedCrop))
    assert crop.scale == (0.08, 1.0) and crop.ratio == pytest.approx((3 / 4, 4 / 3))
    assert crop.interpolation == v2.InterpolationMode.BICUBIC
    hsl = next(s for s in steps if isinstance(s, RandomHSL))
    assert (hsl.hue, hsl.saturation, hsl.lightness) == (20, 40, 50)
    assert not any(isinstance(s, Lighting) for s in steps)  # "we did not use PCA lighting"
    evalt = build_transform("dpn", train=False, input_size=(3, 224, 224), mean=MEAN, std=STD)
    fb = build_transform("fb-resnet", train=False, input_size=(3, 224, 224), mean=MEAN, std=STD)
    img = torch.randint(0, 256, (3, 260, 300), dtype=torch.uint8)
    torch.testing.assert_close(evalt(img), fb(img))


def test_every_new_preset_is_a_row_with_its_source():
    names = ["vgg-s256", "vgg-s384", "vgg-jitter", "resnet-paper", "inception", "wrn-cifar",
             "densenet-cifar", "dpn", "nin-cifar"]
    assert all(name in PRESETS and PRESETS[name].source for name in names)
    assert [name for name in PRESETS if PRESETS[name].whitens] == ["nin-cifar"]
