"""The visualisations, checked by computation: each array against a direct forward pass,
autograd, or a hand computation on a network small enough to write out."""
# captum announces the ReLU hooks it sets whenever it is called directly here.
pytestmark = __import__("pytest").mark.filterwarnings("ignore:Setting backward hooks on ReLU")
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from convnets import create_model
from convnets.errors import ConfigError
from convnets.inspect.visualize import (DreamPriors, default_layer, dream, first_layer_filters,
                                        layer_activations, mean_image, occlusion, project_back)
from convnets.inspect.visualize.occlusion import occlusion_grid
from convnets.models.gunn import GunnLayer, GunnNet

from helpers import randomise_bn


class TinyNet(nn.Module):
    """conv - ReLU module - max pool - conv - functional ReLU - global pool - linear."""

    def __init__(self, functional: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.relu1 = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.relu2 = None if functional else nn.ReLU()
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        x = self.conv2(self.pool(self.relu1(self.conv1(x))))
        x = F.relu(x) if self.relu2 is None else self.relu2(x)
        return self.fc(x.mean((2, 3)))


def tiny_gunn() -> GunnNet:
    net = GunnNet(stages=[(8, 2), (8, 4)], imagenet=False, stem_channels=4, head_channels=8,
                  num_classes=5)
    return randomise_bn(net)


@pytest.fixture
def x():
    return torch.randn(3, 12, 12)


# --- layers ----------------------------------------------------------------------------

def test_unknown_layer_lists_the_valid_names(x):
    with pytest.raises(ConfigError, match=r"no layer 'conv3' in TinyNet; layers: conv1, relu1, "
                                          r"pool, conv2, fc"):
        layer_activations(TinyNet().eval(), x, "conv3")


def test_a_large_model_lists_its_top_levels_and_points_to_summary():
    with pytest.raises(ConfigError) as err:
        layer_activations(create_model("resnet20").eval(), torch.randn(3, 16, 16), "layer9")
    text = str(err.value)
    assert "layer1.0, layer1.1" in text and "convnets summary" in text and "\n" not in text


def test_a_gunn_layer_is_seen_its_inner_units_are_refused(x):
    net = tiny_gunn()
    acts = layer_activations(net, x, "features.1")
    with torch.no_grad():
        h = net.features[0](net.stem(x[None]))
        expected = net.features[1](h)
    assert np.allclose(acts.maps, expected[0].numpy(), atol=1e-6)
    with pytest.raises(ConfigError, match=r"'features.1.units.0' never runs as a module in GunnNet; "
                                          r"'features.1' computes it inside its own forward"):
        layer_activations(net, x, "features.1.units.0")
    # As a SUNN the same weights call the units as modules: the hook fires.
    net.set_gradual(False)
    assert layer_activations(net, x, "features.1.units.0").maps.shape == (8, 12, 12)


def test_a_layer_without_feature_maps_is_refused(x):
    with pytest.raises(ConfigError, match=r"layer 'fc' outputs \(1, 5\), not feature maps"):
        layer_activations(TinyNet().eval(), x, "fc")


def test_default_layer_is_the_deepest_top_level_feature_map():
    assert default_layer(create_model("resnet20").eval(), torch.randn(3, 16, 16)) == "layer3"
    assert default_layer(TinyNet().eval(), torch.randn(3, 12, 12)) == "conv2"


def test_input_must_be_one_image():
    with pytest.raises(ConfigError, match=r"one image tensor \(C, H, W\), got \(2, 3, 12, 12\)"):
        layer_activations(TinyNet().eval(), torch.randn(2, 3, 12, 12))


# --- filters and activations -------------------------------------------------------------

def test_filters_are_the_first_convolution_weights():
    net = create_model("resnet20")
    f = first_layer_filters(net)
    assert f.layer == "conv1" and np.array_equal(f.weights, net.conv1.weight.detach().numpy())
    with pytest.raises(ConfigError, match="has no convolution"):
        first_layer_filters(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))


def test_activations_are_the_layers_output_and_probabilities_the_softmax(x):
    net = TinyNet().eval()
    acts = layer_activations(net, x, "relu1")
    with torch.no_grad():
        expected = torch.relu(net.conv1(x[None]))[0]
        probs = torch.softmax(net(x[None]), 1)[0]
    assert np.allclose(acts.maps, expected.numpy(), atol=1e-6)
    assert np.allclose(acts.probs, probs.numpy(), atol=1e-6)
    # 'conv1' is seen before the in-place ReLU that follows it changes its output.
    assert (layer_activations(net, x, "conv1").maps < 0).any()


# --- occlusion -------------------------------------------------------------------------

def _occluded_by_hand(x, row, col, patch, stride):
    out = x.clone()
    top = row * stride + stride // 2 - patch // 2
    left = col * stride + stride // 2 - patch // 2
    for i in range(x.shape[1]):
        for j in range(x.shape[2]):
            if top <= i < top + patch and left <= j < left + patch:
                out[:, i, j] = 0.0
    return out


def test_occlusion_maps_equal_direct_forward_passes(x):
    net = TinyNet().eval()
    res = occlusion(net, x, patch=5, stride=3, layer="conv2", batch_size=7, target=2)
    assert res.prob.shape == res.top_class.shape == res.activation.shape == (4, 4)
    with torch.no_grad():
        base = net.conv2(net.pool(torch.relu(net.conv1(x[None]))))[0]
    assert res.channel == int(base.sum((1, 2)).argmax())
    for row, col in [(0, 0), (1, 2), (3, 3), (2, 0)]:
        occluded = _occluded_by_hand(x, row, col, 5, 3)[None]
        with torch.no_grad():
            p = torch.softmax(net(occluded), 1)[0]
            fmap = net.conv2(net.pool(torch.relu(net.conv1(occluded))))[0, res.channel]
        assert res.prob[row, col] == pytest.approx(float(p[2]), abs=1e-6)
        assert res.top_class[row, col] == int(p.argmax())
        assert res.top_prob[row, col] == pytest.approx(float(p.max()), abs=1e-6)
        assert res.activation[row, col] == pytest.approx(float(fmap.sum()), rel=1e-5)


def test_occlusion_does_not_depend_on_the_batch_size_and_targets_the_prediction(x):
    net = TinyNet().eval()
    a = occlusion(net, x, patch=4, stride=2, batch_size=1)
    b = occlusion(net, x, patch=4, stride=2, batch_size=64)
    assert np.allclose(a.prob, b.prob, atol=1e-6) and np.array_equal(a.top_class, b.top_class)
    assert a.target == int(np.argmax(a.probs)) and a.layer == "conv2"
    assert occlusion_grid(12, 12, 5) == (3, 3)


def test_occlusion_targets_a_class_by_name(x):
    res = occlusion(TinyNet().eval(), x, target="c", classes=["a", "b", "c", "d", "e"], patch=4,
                    stride=4)
    assert res.target == 2


@pytest.mark.parametrize("kw,message", [
    (dict(patch=0), "patch must be between 1 and 12"),
    (dict(patch=13), "patch must be between 1 and 12"),
    (dict(stride=0), "stride must be between 1 and 12"),
    (dict(batch_size=0), "batch_size must be at least 1"),
    (dict(target=5), "class index 5 is out of range: the model has 5 classes"),
    (dict(target="zebra"), "unknown class 'zebra'"),
])
def test_occlusion_bad_options(x, kw, message):
    with pytest.raises(ConfigError, match=message):
        occlusion(TinyNet().eval(), x, **kw)


# --- deconvnet, guided backpropagation, saliency -----------------------------------------

class HandNet(nn.Module):
    """x -> W1 -> ReLU -> W2 -> ReLU -> W3: small enough to project back by hand."""

    def __init__(self, functional: bool) -> None:
        super().__init__()
        self.fc1 = nn.Linear(12, 7, bias=False)
        self.fc2 = nn.Linear(7, 5, bias=False)
        self.fc3 = nn.Linear(5, 3, bias=False)
        self.functional = functional
        self.relu_a, self.relu_b = nn.ReLU(), nn.ReLU()

    def forward(self, x):
        relu_a, relu_b = (F.relu, torch.relu) if self.functional else (self.relu_a, self.relu_b)
        return self.fc3(relu_b(self.fc2(relu_a(self.fc1(x.flatten(1))))))


@pytest.mark.parametrize("functional", [False, True])
def test_projections_equal_a_hand_computation(functional):
    net = HandNet(functional).eval()
    x = torch.randn(3, 2, 2)
    W1, W2, W3 = (m.weight.detach().numpy().astype(np.float64) for m in (net.fc1, net.fc2, net.fc3))
    v = x.flatten().numpy().astype(np.float64)
    a1 = W1 @ v
    a2 = W2 @ np.maximum(a1, 0)
    cls = 1
    relu = lambda t: np.maximum(t, 0)  # noqa: E731
    g = W3[cls]
    deconv = W1.T @ relu(W2.T @ relu(g))                               # rectify the signal
    guided = W1.T @ (relu(W2.T @ (relu(g) * (a2 > 0))) * (a1 > 0))    # rectify and mask
    saliency = W1.T @ ((W2.T @ (g * (a2 > 0))) * (a1 > 0))            # mask only: the gradient
    p = project_back(net, x, target=cls)
    assert np.allclose(p.deconv.ravel(), deconv, atol=1e-5)
    assert np.allclose(p.guided.ravel(), guided, atol=1e-5)
    assert np.allclose(p.saliency.ravel(), saliency, atol=1e-5)
    assert not np.allclose(deconv, saliency) and not np.allclose(guided, saliency)


def test_a_relu_input_used_elsewhere_keeps_its_other_gradient():
    """y feeds a ReLU and, directly, the output: only the ReLU's path is rectified."""

    class Branch(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.skip = (nn.Linear(6, 4, bias=False), nn.Linear(4, 1, bias=False),
                                             nn.Linear(4, 1, bias=False))

        def forward(self, x):
            y = self.fc1(x.flatten(1))
            return self.fc2(F.relu(y)) + self.skip(y)

    net = Branch().eval()
    x = torch.randn(1, 2, 3)
    W1 = net.fc1.weight.detach().numpy()
    w2, s = net.fc2.weight.detach().numpy()[0], net.skip.weight.detach().numpy()[0]
    p = project_back(net, x, target=0)
    assert np.allclose(p.deconv.ravel(), W1.T @ (np.maximum(w2, 0) + s), atol=1e-5)


class _GuidedRelu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t):
        ctx.save_for_backward(t)
        return t.clamp_min(0)

    @staticmethod
    def backward(ctx, grad):
        (t,) = ctx.saved_tensors
        return grad.clamp_min(0) * (t > 0)  # rectify the signal and mask by the input


class _DeconvRelu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t):
        return t.clamp_min(0)

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp_min(0)  # rectify the signal only


class _Reference(TorchFunctionMode):
    """An independent implementation: every ReLU replaced by an autograd function with the
    method's backward rule (no captum, no hooks)."""

    def __init__(self, relu):
        super().__init__()
        self.relu = relu

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_):
            return self.relu.apply(args[0])
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name", ["resnet20", "nin_cifar", "densenet_bc100_k12", "gunn"])
def test_deconvnet_and_guided_backprop_through_the_zoo_equal_an_independent_implementation(name):
    net = tiny_gunn() if name == "gunn" else randomise_bn(create_model(name, num_classes=5))
    x = torch.randn(3, 12, 12)
    p = project_back(net, x, target=3)
    if isinstance(net, GunnNet):
        assert all(layer.fast for layer in net.modules() if isinstance(layer, GunnLayer))
        for layer in net.gunn_layers():
            layer.fast = False  # the reference needs autograd through every ReLU too
    for got, relu in ((p.guided, _GuidedRelu), (p.deconv, _DeconvRelu)):
        inp = x[None].clone().requires_grad_()
        with _Reference(relu):
            score = net(inp)[0, 3]
        (expected,) = torch.autograd.grad(score, inp)
        assert np.allclose(got, expected[0].numpy(), atol=1e-5 * float(expected.abs().max()))
    # Saliency is the plain input gradient, here through GUNN's fast backward pass.
    for layer in net.modules():
        if isinstance(layer, GunnLayer):
            layer.fast = True
    inp = x[None].clone().requires_grad_()
    (grad,) = torch.autograd.grad(net(inp)[0, 3], inp)
    assert np.allclose(p.saliency, grad[0].numpy(), atol=1e-6)
    assert not np.allclose(p.guided, p.saliency)


def test_with_module_relus_only_captum_alone_gives_the_same():
    from captum.attr import Deconvolution, GuidedBackprop

    net = TinyNet(functional=False).eval()
    net.relu1.inplace = False  # captum's own hooks, unrouted, with a plain module ReLU
    x = torch.randn(3, 12, 12)
    p = project_back(net, x, target=4)
    inp = x[None].clone().requires_grad_()
    assert np.allclose(p.deconv, Deconvolution(net).attribute(inp, target=4)[0].detach().numpy(), atol=1e-6)
    assert np.allclose(p.guided, GuidedBackprop(net).attribute(inp, target=4)[0].detach().numpy(), atol=1e-6)


def test_the_strongest_activation_of_a_layer_projects_as_the_transposed_filters(x):
    net = TinyNet().eval()
    p = project_back(net, x, layer="conv1", top=3)
    with torch.no_grad():
        out = net.conv1(x[None])[0]
    channel = int(out.flatten(1).amax(1).argmax())
    assert p.channel == channel and p.map_size == (12, 12)
    values, index = out[channel].flatten().topk(3)
    assert p.positions == [(int(i) // 12, int(i) % 12) for i in index]
    kept = torch.zeros_like(out)
    kept[channel].view(-1)[index] = values
    # No ReLU lies below conv1: all three methods are the transposed convolution of the kept map.
    expected = F.conv_transpose2d(kept[None], net.conv1.weight, padding=1)[0].detach().numpy()
    for got in (p.deconv, p.guided, p.saliency):
        assert np.allclose(got, expected, atol=1e-5)


def test_a_deeper_layer_projects_through_its_relus(x):
    net = TinyNet(functional=False).eval()
    net.relu1.inplace = False
    p = project_back(net, x, layer="conv2")
    from captum.attr import Deconvolution

    with torch.no_grad():
        out = net.conv2(net.pool(net.relu1(net.conv1(x[None]))))[0]
    kept = torch.zeros_like(out)
    flat = out[p.channel].flatten()
    kept[p.channel].view(-1)[flat.argmax()] = flat.max()

    class ToConv2(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, t):
            return (net.conv2(net.pool(net.relu1(net.conv1(t)))) * kept).flatten(1).sum(1)

    inp = x[None].clone().requires_grad_()
    expected = Deconvolution(ToConv2()).attribute(inp)[0].detach().numpy()
    assert np.allclose(p.deconv, expected, atol=1e-6)


@pytest.mark.parametrize("kw,message", [
    (dict(layer="conv1", target=1), "give a layer or a class to project, not both"),
    (dict(layer="conv1", top=0), "top must be between 1 and 144"),
    (dict(target=9), "class index 9 is out of range"),
])
def test_projection_bad_options(x, kw, message):
    with pytest.raises(ConfigError, match=message):
        project_back(TinyNet().eval(), x, **kw)


def test_a_network_without_relus_is_refused():
    net = create_model("lenet5").eval()
    with pytest.raises(ConfigError, match="has no ReLU: the deconvnet and guided backpropagation"):
        project_back(net, torch.randn(1, 32, 32))


# --- dream -----------------------------------------------------------------------------

_QUICK = DreamPriors(steps=6, octaves=2, copies=2)


def test_dream_raises_the_class_score_and_stays_within_the_pixels():
    net = TinyNet().eval()
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    d = dream(net, (3, 12, 12), mean=mean, std=std, target=2, priors=_QUICK)
    with torch.no_grad():
        before = net(torch.from_numpy(d.start)[None])[0, 2]
        after = net(torch.from_numpy(d.image)[None])[0, 2]
    assert after > before and d.scores[-1] > d.scores[0]
    assert d.probs[2] > d.start_probs[2]
    assert len(d.scores) == 12 and d.what == "class '2'"
    pixels = d.image * np.array(std)[:, None, None] + np.array(mean)[:, None, None]
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6


def test_dream_of_a_layer_raises_its_activation_and_keeps_grey_images_grey():
    net = TinyNet().eval()
    kw = dict(mean=(0.3,), std=(0.3,), layer="conv2", channel=1, priors=_QUICK, grey=True)
    d = dream(net, (3, 12, 12), **kw)
    @torch.no_grad()
    def act(a):
        return float(net.conv2(net.pool(torch.relu(net.conv1(torch.from_numpy(a)[None]))))[0, 1].mean())
    assert act(d.image) > act(d.start)
    assert np.allclose(d.image[0], d.image[1]) and np.allclose(d.image[1], d.image[2])
    again = dream(net, (3, 12, 12), **kw)
    assert np.array_equal(d.image, again.image)  # the seed decides the noise and the jitter


def test_dream_starts_from_the_mean_image_or_from_an_image():
    net = TinyNet().eval()
    data = [(torch.full((3, 12, 12), float(k)), 0) for k in range(4)]
    m = mean_image(data)
    assert torch.allclose(m, torch.full((3, 12, 12), 1.5))
    d = dream(net, (3, 12, 12), mean=(0.5,), std=(0.5,), target=0, mean_image=m * 0.1,
              priors=DreamPriors(steps=1, octaves=1, lr=0.0, blur=0.0))
    assert abs(d.start.mean() - 0.15) < 0.05  # the mean image plus faint noise
    start = torch.randn(3, 12, 12).clamp(-1, 1)
    d = dream(net, (3, 12, 12), mean=(0.5,), std=(0.5,), target=0, image=start,
              priors=DreamPriors(steps=1, octaves=1))
    assert np.array_equal(d.start, start.numpy())


@pytest.mark.parametrize("kw,message", [
    (dict(), "give exactly one of them"),
    (dict(target=1, layer="conv2"), "give exactly one of them"),
    (dict(target=1, channel=2), "give the layer too"),
    (dict(layer="conv2", channel=6), "has 6 feature maps; channel 6 does not exist"),
    (dict(layer="nope"), "no layer 'nope'"),
    (dict(target=1, priors=DreamPriors(steps=0)), "steps must be at least 1"),
    (dict(target=1, priors=DreamPriors(jitter=1.5)), r"jitter must be in \[0, 1\)"),
    (dict(target=1, image=torch.randn(3, 8, 8)), r"the start image is \(3, 8, 8\)"),
])
def test_dream_bad_options(kw, message):
    with pytest.raises(ConfigError, match=message):
        dream(TinyNet().eval(), (3, 12, 12), mean=(0.5,), std=(0.5,), **kw)


@pytest.mark.parametrize("text", ["--3", "²", "3-", "1e2", ""])
def test_a_class_that_is_neither_a_name_nor_an_index_is_one_line(text):
    from convnets.errors import ConfigError
    from convnets.inspect.visualize.common import resolve_class

    with pytest.raises(ConfigError, match="unknown class"):
        resolve_class(text, ["zero", "one"], default=0)
    assert resolve_class(" 1 ", ["zero", "one"], default=0) == 1
    with pytest.raises(ConfigError, match="out of range"):
        resolve_class("-1", ["zero", "one"], default=0)
