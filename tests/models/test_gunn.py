"""GUNN / SUNN: published parameter counts, the update order of Eq. 4, and gradients."""
import copy
import math

import pytest
import torch
from torch import nn

import convnets
from convnets.models.gunn import GunnLayer, GunnNet
from convnets.models.layers import init_he_fan_out
from helpers import randomise_bn


def _count(name, **kw):
    with torch.device("meta"):
        return sum(p.numel() for p in convnets.create_model(name, **kw).parameters())


# Section 5: "The number of parameters of GUNN-15 is 1585746 for CIFAR-10 and 1618236 for
# CIFAR-100 ... GUNN-24 is 29534106 ... and 29631396 ... [GUNN-18] 28909736 ... [Wide] 45624936".
@pytest.mark.parametrize("name,classes,published", [
    ("gunn15", 10, 1_585_746), ("gunn15", 100, 1_618_236),
    ("sunn15", 10, 1_585_746), ("gunn15_nores", 10, 1_585_746),
    ("gunn24", 10, 29_534_106), ("gunn24", 100, 29_631_396), ("sunn24", 100, 29_631_396),
    ("gunn18", 1000, 28_909_736), ("sunn18", 1000, 28_909_736),
    ("wide_gunn18", 1000, 45_624_936), ("wide_sunn18", 1000, 45_624_936),
])
def test_parameter_counts_equal_the_paper(name, classes, published):
    assert _count(name, num_classes=classes) == published


# --- a reference written from the paper, with one explicit module per segment -------------

def _segment_modules(layer: GunnLayer, i: int):
    """Copy segment i's weights out of the stacked layer into plain per-segment modules."""
    o, units = layer.seg_channels, []
    for m, stacked in enumerate(layer.units):
        w, wide = stacked.width, slice(i * stacked.width, (i + 1) * stacked.width)
        out = slice(i * o, (i + 1) * o)
        cin = layer.channels if m == 0 else o
        seq = nn.Sequential(nn.Conv2d(cin, w, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
                            nn.Conv2d(w, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
                            nn.Conv2d(w, o, 1, bias=False), nn.BatchNorm2d(o))
        for dst, src, rows in [(seq[0], stacked.conv1, wide), (seq[1], stacked.bn1, wide),
                               (seq[3], stacked.conv2, wide), (seq[4], stacked.bn2, wide),
                               (seq[6], stacked.conv3, out), (seq[7], stacked.bn3, out)]:
            for key, value in src.state_dict().items():
                if value.ndim:
                    getattr(dst, key).data.copy_(value[rows])
        units.append(seq.eval())
    shortcut = None
    if layer.shortcut is not None:
        rows = slice(i * o, (i + 1) * o)
        shortcut = nn.Sequential(nn.Conv2d(layer.channels, o, 1, bias=False), nn.BatchNorm2d(o)).eval()
        for dst, src in zip(shortcut, layer.shortcut):
            for key, value in src.state_dict().items():
                if value.ndim:
                    getattr(dst, key).data.copy_(value[rows])
    return units, shortcut


def _g(units, shortcut, state):
    g = units[0](state)
    for unit in units[1:]:
        g = g + unit(g)
    return g + shortcut(state) if shortcut is not None else g


def reference(layer: GunnLayer, x: torch.Tensor, gradual: bool) -> torch.Tensor:
    """Eq. 4 (gradual) or one simultaneous update, segment by segment, from the paper."""
    o, P = layer.seg_channels, layer.segments
    segs = list(x.split(o, dim=1))
    new = []
    for i in range(P):
        units, shortcut = _segment_modules(layer, i)
        state = torch.cat(new + segs[len(new):], 1) if gradual else x
        g = _g(units, shortcut, state)
        new.append(segs[i] + g if layer.residual else g)
    return torch.cat(new, 1)


@pytest.mark.parametrize("kw", [
    dict(expansion=2, units=1, projection=True, residual=True),
    dict(expansion=2, units=1, projection=False, residual=True),
    dict(expansion=3, units=2, projection=True, residual=True),
    dict(expansion=2, units=1, projection=True, residual=False),
])
def test_layer_matches_the_papers_update_rules(kw):
    layer = randomise_bn(GunnLayer(12, 4, **kw))
    x = torch.randn(2, 12, 5, 5)
    with torch.no_grad():
        gunn = layer(x)
        torch.testing.assert_close(gunn, reference(layer, x, gradual=True), rtol=1e-5, atol=1e-5)
        layer.gradual = False
        sunn = layer(x)
        torch.testing.assert_close(sunn, reference(layer, x, gradual=False), rtol=1e-5, atol=1e-5)
    # Same weights, different computation: the first segment agrees, the later ones do not.
    torch.testing.assert_close(gunn[:, :3], sunn[:, :3])
    assert (gunn[:, 3:] - sunn[:, 3:]).abs().max() > 1e-3


def test_changing_segment_j_moves_only_segments_from_j_on():
    """Segment i reads the updated segments < i: a change to G_j reaches y_j and every later
    segment (through the state), and never an earlier one. In SUNN it reaches y_j only."""
    layer = randomise_bn(GunnLayer(12, 4))
    x = torch.randn(2, 12, 5, 5)
    j, o = 2, layer.seg_channels
    for gradual in (True, False):
        layer.gradual = gradual
        with torch.no_grad():
            before = layer(x)
            changed = copy.deepcopy(layer)
            changed.units[0].bn3.bias[j * o:(j + 1) * o] += 1.0
            after = changed(x)
        diff = (after - before).abs().amax(dim=(0, 2, 3)).view(4, o).amax(1)
        assert torch.all(diff[:j] == 0)
        assert diff[j] > 0.5
        if gradual:
            assert torch.all(diff[j + 1:] > 1e-4)
        else:
            assert torch.all(diff[j + 1:] == 0)


def test_segment_reads_original_values_of_later_segments():
    """Segment i sees segments > i before their update: perturbing input segment 3 changes
    y_0..y_2 only through G (each reads x_3), and y_3 also by its identity term."""
    layer = randomise_bn(GunnLayer(8, 4))
    x = torch.randn(1, 8, 4, 4, requires_grad=True)
    y = layer(x)
    # d y_0 / d x_3 is G_0's direct dependence on x_3; SUNN computes G_0 from x too.
    (g_gunn,) = torch.autograd.grad(y[:, 0:2].sum(), x)
    layer.gradual = False
    (g_sunn,) = torch.autograd.grad(layer(x)[:, 0:2].sum(), x)
    torch.testing.assert_close(g_gunn, g_sunn)  # segment 0 is computed from the input alone
    assert g_gunn[:, 6:8].abs().sum() > 0


def test_gradients_match_finite_differences_float64():
    layer = GunnLayer(6, 3, units=2).double()
    layer.train()
    x = torch.randn(3, 6, 3, 3, dtype=torch.float64, requires_grad=True)
    params = [p for p in layer.parameters()]

    def f(inp, *ps):
        return torch.func.functional_call(layer, {n: p for (n, _), p in zip(layer.named_parameters(), ps)}, (inp,))

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_batch_norm_running_stats_update_like_the_simultaneous_layer():
    """In the first forward from fresh stats, segment 0 sees the same input in both modes,
    so its BN running statistics must be identical after one training step."""
    torch.manual_seed(1)
    gunn = GunnLayer(12, 3).train()
    sunn = copy.deepcopy(gunn)
    sunn.gradual = False
    x = torch.randn(4, 12, 5, 5)
    gunn(x), sunn(x)
    wide = gunn.units[0].width
    torch.testing.assert_close(gunn.units[0].bn1.running_mean[:wide], sunn.units[0].bn1.running_mean[:wide])
    assert not torch.equal(gunn.units[0].bn1.running_mean[wide:], sunn.units[0].bn1.running_mean[wide:])
    assert not torch.equal(gunn.units[0].bn1.running_mean, torch.zeros_like(gunn.units[0].bn1.running_mean))


@pytest.mark.parametrize("name,size", [("gunn15", 32), ("gunn15_nores", 32), ("sunn15", 32)])
def test_cifar_models_train_a_step(name, size):
    model = convnets.create_model(name)
    x, y = torch.randn(2, 3, size, size), torch.tensor([1, 7])
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert model(x).shape == (2, 10)
    assert all(p.grad is not None for p in model.parameters())


def test_set_gradual_switches_the_same_weights():
    model = convnets.create_model("gunn15").eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        g = model(x)
        s = model.set_gradual(False)(x)
        twin = convnets.create_model("sunn15").eval()
        twin.load_state_dict(model.state_dict())
        torch.testing.assert_close(twin(x), s)
    assert not torch.allclose(g, s)


def test_imagenet_model_runs_at_reduced_size():
    model = convnets.create_model("gunn18", num_classes=5).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 5)


def test_layer_rejects_uneven_segments():
    with pytest.raises(ValueError, match="equal segments"):
        GunnLayer(10, 3)


def test_gunn_trains_under_bf16_autocast():
    model = convnets.create_model("gunn15").train()
    x, y = torch.randn(2, 3, 16, 16), torch.tensor([3, 4])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        loss = nn.functional.cross_entropy(out.float(), y)
    loss.backward()
    assert out.dtype == torch.bfloat16 and torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


# --- initialisation: the authors' He fan-out of each per-segment module --------------------
#
# gunn-15.lua / gunn-18.lua, ConvInit: every cudnn.SpatialConvolution gets N(0, 2/n) with
# n = kW*kH*nOutputPlane of that module. In GunnLayer.lua each segment has its own modules:
# 1x1 N -> 2o, 3x3 2o -> 2o, 1x1 2o -> o, and on CIFAR the shortcut 1x1 N -> o.

def _he_std(kernel: int, out: int) -> float:
    return math.sqrt(2.0 / (kernel * kernel * out))


def _expected_stds(model: GunnNet) -> list[tuple[str, torch.Tensor, float]]:
    """(name, weight, the authors' std) for every convolution, from the per-segment shapes."""
    out = []
    layers = {id(layer): layer for layer in model.gunn_layers()}
    for name, mod in model.named_modules():
        if id(mod) in layers:
            o = mod.seg_channels
            for m, unit in enumerate(mod.units):
                w = unit.width  # K * o: the per-segment module's own width
                out += [(f"{name}.units.{m}.conv1", unit.conv1.weight, _he_std(1, w)),
                        (f"{name}.units.{m}.conv2", unit.conv2.weight, _he_std(3, w)),
                        (f"{name}.units.{m}.conv3", unit.conv3.weight, _he_std(1, o))]
            if mod.shortcut is not None:
                out.append((f"{name}.shortcut", mod.shortcut[0].weight, _he_std(1, o)))
        elif isinstance(mod, nn.Conv2d) and ".units." not in name and ".shortcut" not in name:
            # stem and transitions: one module each, as in the Torch code
            out.append((name, mod.weight, _he_std(mod.kernel_size[0], mod.out_channels)))
    return out


def _check_stds(model: GunnNet, rel: float) -> int:
    checked = 0
    for name, weight, std in _expected_stds(model):
        assert abs(weight.std().item() / std - 1) < rel, (name, weight.std().item(), std)
        assert abs(weight.mean().item()) < 4 * std / math.sqrt(weight.numel()), name
        checked += 1
    return checked


@pytest.mark.parametrize("name", ["gunn15", "sunn15", "gunn15_nores"])
def test_cifar_init_is_he_fan_out_of_the_authors_per_segment_modules(name):
    torch.manual_seed(0)
    model = convnets.create_model(name, num_classes=100)
    # stem, 3 transitions, head, and per GUNN layer conv1/conv2/conv3 + shortcut
    assert _check_stds(model, rel=0.05) == 5 + 3 * 4
    first = model.gunn_layers()[0]  # N = 240, P = 20, o = 12: conv1 std sqrt(2/24)
    assert first.units[0].conv1.weight.std().item() == pytest.approx(0.2887, rel=0.02)
    fc = model.fc  # PyTorch's default linear weight, U(+-1/sqrt(in)) as Torch7's; bias 0
    bound = 1 / math.sqrt(fc.in_features)
    assert fc.weight.abs().max() <= bound and fc.weight.std().item() == pytest.approx(
        bound / math.sqrt(3), rel=0.05)
    assert torch.all(fc.bias == 0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


def test_imagenet_layout_init_7x7_stem_and_no_shortcut():
    torch.manual_seed(0)
    model = GunnNet(stages=[(80, 4), (120, 6)], imagenet=True, num_classes=10)
    assert all(layer.shortcut is None for layer in model.gunn_layers())
    assert model.stem[0][0].kernel_size == (7, 7)
    assert _check_stds(model, rel=0.1) == 1 + 2 + 2 * 3


def test_second_unit_of_gunn24_layers_is_initialised_per_segment():
    torch.manual_seed(0)
    layer = GunnLayer(120, 5, expansion=3, units=2)  # o = 24, K*o = 72, M = 2 as in GUNN-24
    init_he_fan_out(layer)
    second = layer.units[1]
    assert second.conv1.weight.std().item() == pytest.approx(_he_std(1, 72), rel=0.05)
    assert second.conv3.weight.std().item() == pytest.approx(_he_std(1, 24), rel=0.05)
    assert layer.shortcut[0].weight.std().item() == pytest.approx(_he_std(1, 24), rel=0.05)


def test_gunn_and_sunn_twins_start_from_identical_weights():
    """The ablation of Table 5 compares update orders, not initialisations."""
    torch.manual_seed(0)
    gunn = convnets.create_model("gunn15")
    torch.manual_seed(0)
    sunn = convnets.create_model("sunn15")
    a, b = gunn.state_dict(), sunn.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_he_init_option_keeps_the_per_segment_fan_out():
    from convnets.engine.init import init_he

    torch.manual_seed(0)
    model = init_he(convnets.create_model("gunn15"))
    assert _check_stds(model, rel=0.05) == 17


def test_every_gunn_names_its_sunn_twin_and_the_twin_has_its_parameters():
    """The benchmark races a GUNN against ModelInfo.twin: the same tensors, applied at once."""
    from convnets import create_model, list_models, model_info

    gunns = [n for n in list_models("*gunn*") if model_info(n).twin]
    assert sorted(gunns) == ["gunn15", "gunn18", "gunn24", "wide_gunn18"]
    for name in gunns:
        twin = model_info(name).twin
        assert model_info(twin).params == model_info(name).params
        with torch.device("meta"):
            ours, theirs = create_model(name), create_model(twin)
        assert {k: v.shape for k, v in ours.state_dict().items()} == \
               {k: v.shape for k, v in theirs.state_dict().items()}
        assert all(layer.gradual for layer in ours.gunn_layers())
        assert not any(layer.gradual for layer in theirs.gunn_layers())
