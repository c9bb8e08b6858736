"""Every model whose registry entry names a torchvision or timm counterpart
(``ModelInfo.torchvision`` / ``ModelInfo.timm``) is checked against it: the same
parameter count, and where the counterpart's checkpoints load into ours
(``ModelInfo.weights_from``) the same state-dict keys. The lists come from the registry,
so a new entry is covered by declaring its field."""
import warnings

import pytest
import torch
import torchvision

import convnets
from convnets.models.registry import builder_options
from helpers import n_params

timm = pytest.importorskip("timm")

warnings.filterwarnings("ignore", category=FutureWarning)  # torchvision's init_weights notice

INFOS = [convnets.model_info(n) for n in convnets.list_models()]
TORCHVISION = [i.name for i in INFOS if i.torchvision]
TIMM = [i.name for i in INFOS if i.timm]

# The models compared with torchvision and timm when the lists were written out by hand
# (test_residual, test_classic, test_densenet_dpn): none may drop out of the comparison.
COMPARED_WITH_TORCHVISION = {
    "alexnet", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19",
    "vgg19_bn", "googlenet", "inception_v3", "resnet18", "resnet34", "resnet50", "resnet101",
    "resnet152", "wide_resnet50_2", "resnext50_32x4d", "resnext101_32x8d", "densenet121",
    "densenet169", "densenet201"}
COMPARED_WITH_TIMM = {
    "seresnet50", "seresnet101", "seresnet152", "seresnext50_32x4d", "seresnext101_32x4d",
    "inception_v4", "inception_resnet_v2", "dpn92", "dpn98"}


def test_no_model_compared_before_is_left_out():
    assert COMPARED_WITH_TORCHVISION <= set(TORCHVISION)
    assert COMPARED_WITH_TIMM <= set(TIMM)


@pytest.mark.parametrize("name", TORCHVISION)
def test_params_and_keys_equal_torchvision(name):
    info = convnets.model_info(name)
    with torch.device("meta"):
        ours = convnets.create_model(name)
        ref = torchvision.models.get_model(info.torchvision, weights=None)
    assert n_params(ours) == n_params(ref) == info.params
    assert list(ours.state_dict()) == list(ref.state_dict())  # same key names, same order


@pytest.mark.parametrize("name", TIMM)
def test_params_equal_timm(name):
    info = convnets.model_info(name)
    # timm builds Inception v3 without its auxiliary head; compare the inference nets.
    options = {"aux_logits": False} if "aux_logits" in builder_options(name) else {}
    with torch.device("meta"):
        ours = convnets.create_model(name, **options)
        ref = timm.create_model(info.timm, pretrained=False)
    assert n_params(ours) == n_params(ref)
    if not options:
        assert n_params(ours) == info.params
    if info.weights_from == ("timm", info.timm):  # timm's checkpoints load as they are
        assert set(ours.state_dict()) == set(ref.state_dict())


def test_weights_come_from_torchvision_where_it_has_the_model():
    assert convnets.model_info("resnet50").weights_from == ("torchvision", "resnet50")
    assert convnets.model_info("seresnet50").weights_from == ("timm", "seresnet50")
    assert convnets.model_info("resnet20").weights_from is None


def test_the_benchmark_compares_with_the_registered_counterparts():
    from convnets.errors import ConfigError
    from convnets.perf.benchmark import counterpart

    for name in TORCHVISION:
        assert counterpart(name, "torchvision") == convnets.model_info(name).torchvision
    for name in TIMM:
        assert counterpart(name, "timm") == convnets.model_info(name).timm
    # timm has no DenseNet-264 of the paper's layout (its densenet264d has a deep stem).
    with pytest.raises(ConfigError, match="timm has no counterpart of densenet264"):
        counterpart("densenet264", "timm")
