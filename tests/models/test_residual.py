"""The residual family (ResNet, ResNeXt, Wide ResNet, SE, pre-activation, stochastic depth)
checked against torchvision, timm and the papers' parameter counts."""
from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

import convnets
from helpers import n_params, randomise_bn as randomise
from convnets.models import resnet
from convnets.models.resnet import ResNet, ZeroPadShortcut, drop_path_rates

FAMILIES = {"resnet", "resnext", "seresnet", "preact_resnet", "resnet_cifar", "wide_resnet"}
MODELS = [n for n in convnets.list_models() if convnets.model_info(n).family in FAMILIES]


# --- parameter counts ------------------------------------------------------------------

# The parameter counts and key names of the models with a torchvision or timm counterpart
# (the registry's ``torchvision``/``timm`` fields) are checked in test_interop.py.
TORCHVISION = [n for n in MODELS if convnets.model_info(n).torchvision]
TIMM = [n for n in MODELS if convnets.model_info(n).weights_from
        and convnets.model_info(n).weights_from[0] == "timm"]


def test_preact_resnet200_params_equal_timm_resnetv2():
    # timm's ResNetV2 is the same pre-activation bottleneck net (conv stem without BN,
    # projection on the pre-activated input, final BN-ReLU); give it ResNet-200's depths.
    with torch.device("meta"):
        ours = convnets.create_model("preact_resnet200")
        ref = timm.create_model("resnetv2_50", layers=[3, 24, 36, 3])
    assert n_params(ours) == n_params(ref) == convnets.model_info("preact_resnet200").params


# (name, published millions, counted with BN parameters?)
# The 1001-layer and ResNeXt-29 figures are reproduced by the convolution and linear
# weights alone (10.18M, 68.05M); with BN's scale and shift the nets hold 10.33M and
# 68.16M. The architecture follows the authors' code, so the published figures seem to
# leave BN out. The others round to the published figure either way.
CIFAR = [("resnet20", 0.27, True), ("resnet32", 0.46, True), ("resnet44", 0.66, True),
         ("resnet56", 0.85, True), ("resnet110", 1.7, True),
         ("preact_resnet164", 1.7, True), ("preact_resnet1001", 10.2, False),
         ("wrn28_10", 36.5, True), ("wrn40_10", 55.8, True), ("resnext29_16x64d", 68.1, False)]
EXACT = {"resnet110": 1_727_962, "preact_resnet164": 1_703_258, "preact_resnet1001": 10_327_706,
         "wrn28_10": 36_479_194, "wrn40_10": 55_841_754, "resnext29_16x64d": 68_155_210}


@pytest.mark.parametrize("name,millions,with_bn", CIFAR)
def test_cifar_params_match_papers(name, millions, with_bn):
    with torch.device("meta"):
        model = convnets.create_model(name)
    decimals = len(str(millions).split(".")[1])
    assert round(n_params(model, with_bn) / 1e6, decimals) == millions
    if name in EXACT:
        assert n_params(model) == EXACT[name]


def test_cifar_resnet_uses_parameter_free_shortcuts():
    model = convnets.create_model("resnet110")
    shortcuts = [m for m in model.modules() if isinstance(m, ZeroPadShortcut)]
    assert len(shortcuts) == 2  # entering stages 2 and 3
    x = torch.randn(2, 16, 8, 8)
    y = shortcuts[0](x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2]) and not y[:, 16:].any()


# --- logits equal the reference with the same weights ---------------------------------

def make_reference(name: str) -> nn.Module:
    """The model whose checkpoints load into ours, as the registry names it."""
    library, theirs = convnets.model_info(name).weights_from
    if library == "timm":
        return timm.create_model(theirs, pretrained=False)
    return torchvision.models.get_model(theirs, weights=None)


# One of each block and width; every counterpart's keys and counts are in test_interop.py.
REFERENCES = [("resnet18", ".pth"), ("resnet50", ".safetensors"), ("resnext50_32x4d", ".pth"),
              ("wide_resnet50_2", ".pth"), ("seresnet50", ".pth"), ("seresnext50_32x4d", ".pth")]


@pytest.mark.parametrize("name,suffix", REFERENCES, ids=[r[0] for r in REFERENCES])
def test_logits_equal_reference(name, suffix, tmp_path):
    torch.manual_seed(0)
    ref = randomise(make_reference(name))
    path = tmp_path / f"w{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    else:
        torch.save(ref.state_dict(), path)
    ours = convnets.create_model(name, weights=path).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert expected.abs().max() > 0.1
    assert (expected - got).abs().max().item() < 1e-4


# --- every registered model trains ----------------------------------------------------

@pytest.mark.parametrize("name", MODELS)
def test_forward_backward(name):
    torch.manual_seed(0)
    model = convnets.create_model(name, num_classes=7)
    assert isinstance(model, ResNet)
    size = 32 if convnets.model_info(name).input_size[1] == 224 else 8
    x = torch.randn(2, 3, size, size)
    out = model(x)
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    out.square().mean().backward()
    assert model.conv1.weight.grad.abs().sum() > 0
    assert model.get_classifier().weight.grad.abs().sum() > 0


def test_registry_lists_the_assigned_models():
    expected = set(TORCHVISION + TIMM + [c[0] for c in CIFAR] + ["preact_resnet200"])
    assert expected == set(MODELS)


# --- stochastic depth -----------------------------------------------------------------

def test_drop_path_rates_decay_linearly():
    # Huang et al. Eq. 4 with p_L = 0.5 over L = 27 blocks (ResNet-56 has 3 x 9).
    model = convnets.create_model("resnet56", drop_path_rate=0.5)
    probs = [b.drop_path.p for stage in model.stages() for b in stage]
    assert probs == pytest.approx([0.5 * l / 27 for l in range(1, 28)])
    assert drop_path_rates(4, 0.2) == pytest.approx([0.05, 0.1, 0.15, 0.2])


def test_stochastic_depth_train_random_eval_deterministic():
    torch.manual_seed(0)
    plain = convnets.create_model("resnet20")
    deep = convnets.create_model("resnet20", drop_path_rate=0.5)
    deep.load_state_dict(plain.state_dict())
    x = torch.randn(4, 3, 32, 32)
    deep.train()
    torch.manual_seed(1)
    a = deep(x)
    torch.manual_seed(2)
    b = deep(x)
    torch.manual_seed(1)
    a_again = deep(x)
    assert not torch.allclose(a, b)  # different branches dropped
    assert torch.equal(a, a_again)   # the only randomness is the drop mask
    plain.load_state_dict(deep.state_dict())  # the BN statistics the training calls moved
    plain.eval(), deep.eval()
    with torch.no_grad():
        assert torch.equal(deep(x), deep(x))
        assert torch.equal(deep(x), plain(x))


def test_dropped_branch_leaves_the_shortcut():
    block = resnet.BasicBlock(8, 8, drop_path=0.5).train()
    x = torch.randn(64, 8, 4, 4)
    y = block(x)
    kept_identity = [torch.equal(y[i], torch.relu(x[i])) for i in range(64)]
    assert 10 < sum(kept_identity) < 54  # about half the samples skip the branch


def test_bad_options_are_value_errors():
    with pytest.raises(ValueError):
        convnets.create_model("resnet18", drop_path_rate=1.5)
    with pytest.raises(ValueError):
        convnets.create_model("resnet18", no_such_option=1)


@pytest.mark.parametrize("name, reference", [("resnet18", "resnet18"), ("resnet50", "resnet50")])
def test_training_gradients_equal_torchvisions(name, reference):
    """The blocks add and rectify in place; the gradients of a training step must still be
    torchvision's, parameter by parameter."""
    import torchvision

    theirs = getattr(torchvision.models, reference)(num_classes=5)
    ours = convnets.create_model(name, num_classes=5)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 3, 64, 64)
    for net in (ours, theirs):
        net.train()
        net(x).log_softmax(1)[:, 0].sum().backward()
    their_grads = dict(theirs.named_parameters())
    for pname, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, their_grads[pname].grad, rtol=1e-4, atol=1e-5)
