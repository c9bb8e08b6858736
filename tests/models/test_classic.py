"""Classic and Inception families: parameter counts and logits against torchvision / timm,
the papers' layer-by-layer counts, gradients, auxiliary heads and weight-loading errors."""
import warnings

import pytest
import torch
import torchvision
from safetensors.torch import save_file

import convnets
from convnets.models.registry import WeightsError

timm = pytest.importorskip("timm")

warnings.filterwarnings("ignore", category=FutureWarning)  # torchvision's init_weights notice


def _count(model):
    return sum(p.numel() for p in model.parameters())


def _torchvision(name, **kw):
    if name in ("googlenet", "inception_v3"):
        kw = {"init_weights": False, **kw}
    return torchvision.models.get_model(name, weights=None, **kw)


# --- parameter counts ------------------------------------------------------------------

_FAMILIES = {"lenet", "alexnet", "nin", "vgg", "inception"}
_INFOS = [i for i in map(convnets.model_info, convnets.list_models()) if i.family in _FAMILIES]
# From the registry's fields: the models equal to torchvision's, and those whose weights
# come from timm (every counterpart's count and keys: test_interop.py as well).
_TORCHVISION = [i.name for i in _INFOS if i.torchvision]
_TIMM = [i.name for i in _INFOS if i.weights_from and i.weights_from[0] == "timm"]


@pytest.mark.parametrize("name,kw", [(n, {}) for n in _TORCHVISION] + [
    ("googlenet", {"aux_logits": False}), ("inception_v3", {"aux_logits": False}),
    ("googlenet", {"num_classes": 10}), ("inception_v3", {"num_classes": 10}),
])
def test_parameter_counts_equal_torchvision(name, kw):
    with torch.device("meta"):
        ours = _count(convnets.create_model(name, **kw))
        ref = _count(_torchvision(name, **kw))
    assert ours == ref


def test_torchvision_published_counts():
    # torchvision's weight metadata: googlenet's count is the inference net (no aux heads).
    with torch.device("meta"):
        assert _count(convnets.create_model("googlenet", aux_logits=False)) == 6_624_904
        assert _count(convnets.create_model("inception_v3")) == 27_161_264
        assert _count(convnets.create_model("alexnet")) == 61_100_840


@pytest.mark.parametrize("name", _TORCHVISION)
def test_published_errors_match_torchvision_weights(name):
    acc = torchvision.models.get_model_weights(name).DEFAULT.meta["_metrics"]["ImageNet-1K"]
    info = convnets.model_info(name)
    assert info.top1_err == pytest.approx(100 - acc["acc@1"], abs=1e-9)
    assert info.top5_err == pytest.approx(100 - acc["acc@5"], abs=1e-9)


@pytest.mark.parametrize("name", _TIMM)
def test_parameter_counts_equal_timm(name):
    with torch.device("meta"):
        ours = _count(convnets.create_model(name))
        ref = _count(timm.create_model(name, pretrained=False))
    assert ours == ref == convnets.model_info(name).params


def _conv(cin, cout, k, groups=1):
    return cout * (cin // groups) * k * k + cout


def _fc(cin, cout):
    return cin * cout + cout


def _se(c):
    h = c // 16
    return 2 * c * h + h + c


# Layer by layer from the papers' figures and tables, independent of the model code.
_RECOMPUTED = {
    # C1 + S2 + C3 (Table 1: 60 connections of 5x5) + S4 + C5 + F6; the RBF centres are fixed.
    "lenet5": (6 * 26) + 12 + (60 * 25 + 16) + 32 + _conv(16, 120, 5) + _fc(120, 84),
    # Figure 2: conv2, conv4, conv5 split over two GPUs.
    "alexnet_lrn": _conv(3, 96, 11) + _conv(96, 256, 5, 2) + _conv(256, 384, 3)
    + _conv(384, 384, 3, 2) + _conv(384, 256, 3, 2) + _fc(9216, 4096) + _fc(4096, 4096)
    + _fc(4096, 1000),
    "zfnet": _conv(3, 96, 7) + _conv(96, 256, 5) + _conv(256, 384, 3) + _conv(384, 384, 3)
    + _conv(384, 256, 3) + _fc(9216, 4096) + _fc(4096, 4096) + _fc(4096, 1000),
    "nin_cifar": _conv(3, 192, 5) + _conv(192, 160, 1) + _conv(160, 96, 1) + _conv(96, 192, 5)
    + 2 * _conv(192, 192, 1) + _conv(192, 192, 3) + _conv(192, 192, 1) + _conv(192, 10, 1),
    "nin": _conv(3, 96, 11) + 2 * _conv(96, 96, 1) + _conv(96, 256, 5) + 2 * _conv(256, 256, 1)
    + _conv(256, 384, 3) + 2 * _conv(384, 384, 1) + _conv(384, 1024, 3)
    + _conv(1024, 1024, 1) + _conv(1024, 1000, 1),
    # v3 plus one SE block per grid-preserving module: 5b-5d, 6b-6e, 7b-7c.
    "se_inception_v3": 27_161_264 + _se(256) + 2 * _se(288) + 4 * _se(768) + 2 * _se(2048),
}


@pytest.mark.parametrize("name", sorted(_RECOMPUTED))
def test_parameter_counts_recomputed_from_the_papers(name):
    with torch.device("cpu" if name == "lenet5" else "meta"):
        model = convnets.create_model(name)
    assert _count(model) == _RECOMPUTED[name] == convnets.model_info(name).params


def test_se_option_of_the_inception_family():
    # One SE block per grid-preserving module: v4's 4 A, 7 B, 3 C modules; Inception-ResNet-
    # v2's 10 block35, 20 block17 and 10 block8 residual branches.
    with torch.device("meta"):
        v4 = _count(convnets.create_model("inception_v4", se=True))
        irv2 = _count(convnets.create_model("inception_resnet_v2", se=True))
    assert v4 == 42_679_816 + 4 * _se(384) + 7 * _se(1024) + 3 * _se(1536)
    assert irv2 == 55_843_464 + 10 * _se(320) + 20 * _se(1088) + 10 * _se(2080)
    model = convnets.create_model("inception_resnet_v2", se=True, num_classes=3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 75, 75)).shape == (1, 3)


def test_lenet5_has_the_papers_60000_trainable_parameters():
    assert _RECOMPUTED["lenet5"] == 60_000  # Section II.B
    model = convnets.create_model("lenet5")
    # C3 map 15 reads all six S2 maps, map 0 only maps 0-2 (Table 1).
    dense = model.c3.dense_weight()
    assert (dense[15].abs().sum((1, 2)) > 0).all()
    assert (dense[0, 3:] == 0).all() and (dense[0, :3] != 0).all()


def test_lenet5_forward_recomputed_from_the_paper():
    from convnets.models.lenet import _C3_TABLE
    model = convnets.create_model("lenet5").eval()
    x = torch.randn(2, 1, 32, 32)

    def f(a):  # Appendix A
        return 1.7159 * torch.tanh(2 * a / 3)

    def subsample(a, layer):  # sum of each 2x2 window, times a coefficient, plus a bias
        b, c, h, w = a.shape
        s = a.reshape(b, c, h // 2, 2, w // 2, 2).sum((3, 5))
        return s * layer.weight.view(1, -1, 1, 1) + layer.bias.view(1, -1, 1, 1)

    with torch.no_grad():
        h = f(subsample(f(torch.nn.functional.conv2d(x, model.c1.weight, model.c1.bias)),
                        model.s2))
        maps, row = [], 0
        for o, inputs in enumerate(_C3_TABLE):  # each C3 map sums over its own S2 maps only
            acc = model.c3.bias[o].expand(2, 10, 10).clone()
            for i in inputs:
                kernel = model.c3.weight[row][None, None]
                acc += torch.nn.functional.conv2d(h[:, i:i + 1], kernel)[:, 0]
                row += 1
            maps.append(acc)
        h = f(subsample(f(torch.stack(maps, 1)), model.s4))
        h = f(model.f6(f(model.c5(h)).flatten(1)))
        energy = ((h[:, None, :] - model.output.centers[None]) ** 2).sum(-1)  # Eq. 7
        torch.testing.assert_close(model(x), -0.5 * energy, rtol=1e-5, atol=1e-4)


def test_googlenet_paper_5x5_changes_only_the_5x5_branches():
    from convnets.models.googlenet import _MODULES
    extra = sum(red * out * (25 - 9) for (_, _, _, _, red, out, _) in _MODULES.values())
    with torch.device("meta"):
        base = _count(convnets.create_model("googlenet"))
        paper = _count(convnets.create_model("googlenet", paper_5x5=True))
    assert paper - base == extra


# --- logits against the reference implementations -------------------------------------

def _condition(model, size):
    """Give a randomly initialised reference a signal that survives its depth.

    With PyTorch's default initialisation the activations of these deep nets shrink layer by
    layer until the logits are just the last bias, and any two implementations would agree.
    Variance-preserving weights, and BN statistics measured on random inputs, keep the
    logits a function of the input, so that the comparison tests every layer.
    """
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                gain = "linear" if isinstance(m, torch.nn.Linear) else "relu"  # logits O(1)
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity=gain)
                if m.bias is not None:
                    m.bias.normal_(0, 0.1)
        bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        for bn in bns:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0, 0.1)
            bn.reset_running_stats()
            bn.momentum = None  # a cumulative average over the calibration batch
        aux = getattr(model, "AuxLogits", None)
        if aux is not None:  # torchvision's v3 head cannot run at small sizes
            model.AuxLogits = None
        if bns:
            model.train()(torch.randn(8, 3, size, size))
        if aux is not None:
            model.AuxLogits = aux
        for bn in bns:
            bn.momentum = 0.1
    return model.eval()


def _reference(name, kw):
    library, theirs = convnets.model_info(name).weights_from
    if library == "timm":
        return timm.create_model(theirs, pretrained=False, **kw)
    return _torchvision(theirs, **kw)


def _train_step(model, x):
    """One forward/backward in training mode; returns the main logits."""
    out = model.train()(x)
    logits = out[0] if isinstance(out, tuple) else out
    (logits.square().mean() + sum(a.square().mean() for a in out[1:])
     if isinstance(out, tuple) else logits.square().mean()).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert grads[0].abs().sum() > 0  # the gradient reaches the first layer
    return logits


# Each case also takes one training step on the loaded model, so these models need no
# separate forward/backward test below.
@pytest.mark.parametrize("name,size,suffix,options", [
    ("alexnet", 64, ".pth", {}),
    ("vgg11", 32, ".pth", {}),
    ("vgg11_bn", 32, ".safetensors", {}),
    ("googlenet", 32, ".pth", {}),
    ("googlenet", 32, ".pth", {"transform_input": True}),
    ("inception_v3", 75, ".pth", {"transform_input": True}),
    ("inception_v4", 75, ".pth", {}),
    ("inception_resnet_v2", 75, ".safetensors", {}),
])
def test_reference_weights_give_the_same_logits(tmp_path, name, size, suffix, options):
    kw = {"num_classes": 10, **options}
    ref = _condition(_reference(name, kw), size)
    path = tmp_path / f"ref{suffix}"
    state = {k: v.contiguous() for k, v in ref.state_dict().items()}
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    del state
    model = convnets.create_model(name, weights=path, **kw).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected, got = ref(x), model(x)
    del ref
    assert got.shape == (2, 10)
    # The logits depend on the input, so they are more than the classifier's bias.
    assert (expected[0] - expected[1]).abs().max() > 0.05
    assert (got - expected).abs().max().item() < 1e-4
    if name == "inception_v3":  # its auxiliary head needs 299x299 inputs: tested below
        model.AuxLogits = None
    assert _train_step(model, x).shape == (2, 10)


def test_a_misfit_checkpoint_names_the_first_mismatching_tensor(tmp_path):
    path = tmp_path / "ref.pth"
    torch.save(_torchvision("googlenet", num_classes=10, aux_logits=True).state_dict(), path)
    # aux1 is registered before fc, so its classifier is the first tensor that differs.
    with pytest.raises(WeightsError, match=r"'aux1.fc2.weight' has shape \(10, 1024\)"):
        convnets.create_model("googlenet", weights=path)
    state = torch.load(path, weights_only=True)
    del state["inception4a.branch1.bn.running_var"]
    torch.save(state, path)
    with pytest.raises(WeightsError, match="lack tensor 'inception4a.branch1.bn.running_var'"):
        convnets.create_model("googlenet", num_classes=10, weights=path)


# --- training-mode behaviour -----------------------------------------------------------

def test_googlenet_aux_heads_only_in_training():
    model = convnets.create_model("googlenet", num_classes=5)
    x = torch.randn(2, 3, 64, 64)
    out = model.train()(x)
    assert isinstance(out, tuple) and [t.shape for t in out] == [(2, 5)] * 3
    logits, aux1, aux2 = out
    (logits + model.aux_loss_weight * (aux1 + aux2)).sum().backward()
    assert model.aux1.fc2.weight.grad.abs().sum() > 0
    assert model.aux2.conv.conv.weight.grad is not None
    with torch.no_grad():
        eval_out = model.eval()(x)
    assert isinstance(eval_out, torch.Tensor) and eval_out.shape == (2, 5)
    plain = convnets.create_model("googlenet", num_classes=5, aux_logits=False).train()
    assert isinstance(plain(x), torch.Tensor) and plain.aux1 is None


def test_inception_v3_aux_head_in_training():
    # The v3 auxiliary head needs the 17x17 grid of a 299x299 input (its 5x5/3 pool).
    model = convnets.create_model("inception_v3", num_classes=4).train()
    with torch.no_grad():
        logits, aux = model(torch.randn(2, 3, 299, 299))
    assert logits.shape == aux.shape == (2, 4)
    assert isinstance(model.eval()(torch.randn(1, 3, 75, 75)), torch.Tensor)


# --- every registered model trains -----------------------------------------------------

_SMALL = {  # the smallest inputs each architecture takes (v3 without its auxiliary head)
    "lenet5": 32, "nin_cifar": 32, "nin": 64, "alexnet_lrn": 64, "zfnet": 64,
    "se_inception_v3": 75, "vgg13": 32, "vgg13_bn": 32, "vgg16": 32, "vgg16_bn": 32,
    "vgg19": 32, "vgg19_bn": 32,
}
_IN_REFERENCE_TEST = ["alexnet", "vgg11", "vgg11_bn", "googlenet", "inception_v3",
                      "inception_v4", "inception_resnet_v2"]


@pytest.mark.parametrize("name", sorted(_SMALL))
def test_forward_and_backward(name):
    info = convnets.model_info(name)
    kw = {"aux_logits": False} if name.endswith("inception_v3") else {}
    model = convnets.create_model(name, num_classes=3, **kw)
    size = _SMALL[name]
    assert _train_step(model, torch.randn(2, info.input_size[0], size, size)).shape == (2, 3)
    assert model.num_classes == 3


def test_all_classic_models_are_registered_with_metadata():
    ours = set(_SMALL) | set(_IN_REFERENCE_TEST)
    registered = {i.name for i in _INFOS}
    assert registered == ours
    for name in ours:
        info = convnets.model_info(name)
        assert info.paper and info.year and info.params
