"""DenseNet (ImageNet, CIFAR DenseNet-BC, memory-efficient form) and DPN, checked against
torchvision, timm and the papers' parameter counts."""
from __future__ import annotations

import re

import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

import convnets
from helpers import n_params, randomise_bn as randomise
from convnets.models.densenet import DenseLayer, DenseNet
from convnets.models.dpn import DPN

MODELS = [n for n in convnets.list_models() if convnets.model_info(n).family in {"densenet", "dpn"}]


# --- parameter counts ------------------------------------------------------------------

# DenseNet-121/169/201 against torchvision and DPN-92/98 against timm (parameter counts
# and key names): test_interop.py, from the registry's fields.

def test_densenet264_params_equal_torchvision_class():
    # torchvision registers no DenseNet-264, but its DenseNet class with the paper's
    # Table 1 configuration is the reference (timm's densenet264d has a deep stem).
    with torch.device("meta"):
        ours = convnets.create_model("densenet264")
        ref = torchvision.models.DenseNet(growth_rate=32, block_config=(6, 12, 64, 48),
                                          num_init_features=64)
    assert n_params(ours) == n_params(ref) == convnets.model_info("densenet264").params
    assert round(n_params(ours) / 1e6, 1) == 33.3  # GUNN paper, Table 4


@pytest.mark.parametrize("name,millions", [("densenet_bc100_k12", 0.8),
                                           ("densenet_bc190_k40", 25.6)])
def test_densenet_bc_params_match_paper(name, millions):
    with torch.device("meta"):
        model = convnets.create_model(name)
    assert round(n_params(model) / 1e6, 1) == millions
    assert convnets.model_info(name).params == millions * 1e6


# --- logits equal the reference with the same weights ---------------------------------

def _old_torchvision_names(state):
    # torchvision's first DenseNet checkpoints: "denselayer1.norm.1.weight" for
    # "denselayer1.norm1.weight", and no BN batch counters.
    return {re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", k): v
            for k, v in state.items() if not k.endswith("num_batches_tracked")}


@pytest.mark.parametrize("old_names", [False, True])
def test_densenet121_logits_equal_torchvision(old_names, tmp_path):
    torch.manual_seed(0)
    ref = randomise(torchvision.models.densenet121())
    state = ref.state_dict()
    if old_names:
        state = _old_torchvision_names(state)
        assert "features.denseblock1.denselayer1.norm.1.weight" in state
    torch.save(state, tmp_path / "w.pth")
    ours = convnets.create_model("densenet121", weights=tmp_path / "w.pth").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert expected.abs().max() > 0.1
    assert (expected - got).abs().max().item() < 1e-4


def test_dpn92_logits_equal_timm(tmp_path):
    torch.manual_seed(0)
    ref = randomise(timm.create_model("dpn92", pretrained=False))
    assert ref.state_dict()["classifier.weight"].ndim == 4  # a 1x1 conv there, linear here
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()},
              str(tmp_path / "w.safetensors"))
    ours = convnets.create_model("dpn92", weights=tmp_path / "w.safetensors").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert expected.abs().max() > 0.1
    assert (expected - got).abs().max().item() < 1e-4


# --- memory-efficient DenseNet --------------------------------------------------------

def _small_densenet(memory_efficient: bool) -> DenseNet:
    return DenseNet(growth_rate=6, block_config=(3, 3), num_init_features=12, stem="cifar",
                    memory_efficient=memory_efficient, num_classes=5)


def test_memory_efficient_equals_plain(monkeypatch):
    torch.manual_seed(0)
    plain, efficient = _small_densenet(False).train(), _small_densenet(True).train()
    efficient.load_state_dict(plain.state_dict())
    calls = []
    original = DenseLayer._bottleneck

    def counted(self, features, update_stats):
        calls.append(update_stats)
        return original(self, features, update_stats)

    monkeypatch.setattr(DenseLayer, "_bottleneck", counted)
    results = []
    for model in (plain, efficient):
        calls.clear()
        x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1),
                        requires_grad=True)
        out = model(x)
        out.square().sum().backward()
        results.append((out, x.grad, {k: p.grad for k, p in model.named_parameters()},
                        model.state_dict(), list(calls)))
    (out_a, gx_a, grads_a, state_a, calls_a), (out_b, gx_b, grads_b, state_b, calls_b) = results
    # 6 layers: the plain net runs each bottleneck once; the efficient one recomputes it
    # in backward, updating the running statistics only the first time.
    assert calls_a == [True] * 6
    assert sorted(calls_b) == [False] * 6 + [True] * 6
    torch.testing.assert_close(out_b, out_a, rtol=0, atol=1e-6)
    torch.testing.assert_close(gx_b, gx_a, rtol=1e-5, atol=1e-6)
    for key in grads_a:
        torch.testing.assert_close(grads_b[key], grads_a[key], rtol=1e-5, atol=1e-6)
    for key in state_a:  # running statistics moved exactly once
        torch.testing.assert_close(state_b[key], state_a[key], rtol=0, atol=1e-7)


def test_memory_efficient_eval_and_no_grad_skip_checkpointing():
    torch.manual_seed(0)
    model = _small_densenet(True).eval()
    plain = _small_densenet(False).eval()
    plain.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), plain(x))


# --- every registered model trains ----------------------------------------------------

@pytest.mark.parametrize("name", MODELS)
def test_forward_backward(name):
    torch.manual_seed(0)
    model = convnets.create_model(name, num_classes=7)
    assert isinstance(model, (DenseNet, DPN))
    size = 32 if convnets.model_info(name).input_size[1] == 224 else 8
    out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    out.square().mean().backward()
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.weight.grad.abs().sum() > 0
    assert model.get_classifier().weight.grad.abs().sum() > 0


def test_registry_lists_the_assigned_models():
    assert set(MODELS) == {"densenet121", "densenet169", "densenet201", "densenet264",
                           "densenet_bc100_k12", "densenet_bc190_k40", "dpn92", "dpn98"}
