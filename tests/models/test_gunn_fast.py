"""The fast gradual update (Section 3.4, Algorithm 1) against the straightforward one.

``GunnLayer.forward`` runs Eq. 4 in one in-place state buffer and back-propagates by
rebuilding each segment's input from the output; ``_gradual_reference`` concatenates a new
state per segment and lets autograd keep them all. Both must give the same outputs,
gradients and batch-norm statistics; the fast one must keep no more for backward than the
simultaneous layer does plus its own output.
"""
import copy
import functools

import pytest
import torch
from torch import nn

from convnets.models import gunn_fast
from convnets.models.gunn import GunnLayer, _GradualUpdate, _layer_params
from convnets.perf.profile import saved_tensor_bytes
from helpers import randomise_bn


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def _step(layer: GunnLayer, x: torch.Tensor, grad: torch.Tensor, reference: bool):
    layer.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    y = layer._gradual_reference(x) if reference else layer(x)
    y.backward(grad)
    return y.detach(), x.grad, [p.grad for p in layer.parameters()], [b.clone() for b in layer.buffers()]


def _assert_step_matches_the_reference(fast: GunnLayer, ref: GunnLayer, x: torch.Tensor,
                                       grad: torch.Tensor) -> None:
    """One step of ``fast`` and of its copy ``ref`` through the straightforward update give
    the same outputs, gradients and batch-norm buffers."""
    y_f, gx_f, gp_f, buf_f = _step(fast, x, grad, reference=False)
    y_r, gx_r, gp_r, buf_r = _step(ref, x, grad, reference=True)
    assert _rel(y_f, y_r) < 1e-5 and _rel(gx_f, gx_r) < 1e-5
    for (name, _), a, b in zip(fast.named_parameters(), gp_f, gp_r):
        assert _rel(a, b) < 1e-5, name
    for (name, _), a, b in zip(fast.named_buffers(), buf_f, buf_r):
        assert torch.equal(a, b) if a.dtype == torch.long else _rel(a, b) < 1e-5, name


CONFIGS = [
    dict(segments=3, units=1, projection=True, residual=True),
    dict(segments=4, units=1, projection=False, residual=True),
    dict(segments=3, units=1, projection=True, residual=False),
    dict(segments=4, units=2, projection=True, residual=True),
    dict(segments=3, units=2, projection=False, residual=False),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(f"{k[0]}{int(v)}" for k, v in c.items()))
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "cl"])
def test_fast_update_equals_the_straightforward_one(cfg, train, channels_last):
    torch.manual_seed(0)
    cfg = dict(cfg)
    fast = randomise_bn(GunnLayer(12, cfg.pop("segments"), expansion=2, **cfg)).train(train)
    ref = copy.deepcopy(fast)
    initial = [b.clone() for b in fast.buffers()]
    x = torch.randn(3, 12, 6, 6)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    grad = torch.randn(3, 12, 6, 6)
    y_f, gx_f, gp_f, buf_f = _step(fast, x, grad, reference=False)
    y_r, gx_r, gp_r, buf_r = _step(ref, x, grad, reference=True)
    assert _rel(y_f, y_r) < 1e-5
    assert _rel(gx_f, gx_r) < 1e-5
    assert len(gp_f) == len(gp_r) and all(g is not None for g in gp_f)
    for (name, _), a, b in zip(fast.named_parameters(), gp_f, gp_r):
        assert _rel(a, b) < 1e-5, name
    for (name, _), a, b in zip(fast.named_buffers(), buf_f, buf_r):
        assert torch.equal(a, b) if a.dtype == torch.long else _rel(a, b) < 1e-5, name
    # In train mode the step moved the running statistics (so comparing them means something).
    assert torch.equal(buf_f[0], initial[0]) != train
    # The input is never written to, and the output keeps the input's memory format.
    assert y_f.is_contiguous() == x.is_contiguous()


def test_running_statistics_move_like_the_reference_over_several_steps():
    torch.manual_seed(1)
    fast = GunnLayer(12, 4, units=2).train()
    ref = copy.deepcopy(fast)
    before = fast.units[0].bn1.running_mean.clone()
    for _ in range(3):
        x = torch.randn(3, 12, 6, 6)
        fast(x).sum().backward()
        ref._gradual_reference(x).sum().backward()
    assert not torch.allclose(before, fast.units[0].bn1.running_mean)
    for (name, a), b in zip(fast.named_buffers(), ref.buffers()):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), name
    assert int(fast.units[0].bn1.num_batches_tracked) == 3


def test_without_grad_the_fast_forward_equals_the_reference():
    layer = randomise_bn(GunnLayer(12, 3, units=2)).eval()
    x = torch.randn(3, 12, 6, 6)
    with torch.no_grad():
        assert _rel(layer(x), layer._gradual_reference(x)) < 1e-5


def test_input_is_left_untouched():
    layer = GunnLayer(12, 3).train()
    x = torch.randn(3, 12, 6, 6).contiguous(memory_format=torch.channels_last).requires_grad_()
    before = x.detach().clone()
    layer(x).sum().backward()
    assert torch.equal(x.detach(), before)


@pytest.mark.parametrize("train", [True, False])
def test_gradcheck_float64(train):
    torch.manual_seed(2)
    layer = randomise_bn(GunnLayer(4, 2, units=2)).double().train(train)
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    params = [p.detach().clone().requires_grad_() for p in _layer_params(layer)]
    assert torch.autograd.gradcheck(lambda inp, *ps: _GradualUpdate.apply(layer, inp, *ps),
                                    (x, *params), eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


@pytest.mark.parametrize("units", [1, 2])
def test_fast_update_keeps_what_the_simultaneous_layer_keeps(units):
    """Algorithm 1's promise (Section 3.4): beyond the layer's own output, the gradual layer
    keeps for backward exactly the bytes the simultaneous layer keeps; the straightforward
    one keeps one copy of the state per segment on top."""
    layer = GunnLayer(24, 6, units=units).train()
    x = torch.randn(2, 24, 8, 8, requires_grad=True)
    out_bytes = x.numel() * x.element_size()
    fast, _ = saved_tensor_bytes(lambda: layer(x))
    ref, _ = saved_tensor_bytes(lambda: layer._gradual_reference(x))
    layer.gradual = False
    sunn, _ = saved_tensor_bytes(lambda: layer(x))
    # BN's per-segment mean / inverse std are P small vectors instead of one long one; the
    # stacked weights are joined per call.
    slack = 64 * 1024
    assert fast <= sunn + out_bytes + slack
    assert ref >= sunn + (layer.segments - 1) * out_bytes


@pytest.mark.parametrize("projection", [True, False])
def test_bf16_autocast_is_as_accurate_as_autocast_on_the_reference(projection):
    """Under autocast the fast update runs its products in bfloat16 and batch norm with float32
    parameters: against a float32 run, its error is that of the straightforward layer under
    the same autocast, and it still keeps far less for backward."""
    torch.manual_seed(0)
    base = GunnLayer(32, 8, projection=projection).train()
    x, grad = torch.randn(4, 32, 6, 6), torch.randn(4, 32, 6, 6)
    runs = {}
    for name in ("fp32", "fast", "reference"):
        layer, xi = copy.deepcopy(base), x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name != "fp32"):
            nbytes, y = saved_tensor_bytes(
                lambda: layer._gradual_reference(xi) if name == "reference" else layer(xi))
        y.float().backward(grad)
        runs[name] = (nbytes, y.dtype, y.float(), xi.grad, [p.grad for p in layer.parameters()])
    assert runs["fast"][1] == torch.bfloat16
    assert all(g.dtype == torch.float32 for g in runs["fast"][4])
    exact = runs["fp32"]
    for k in (2, 3):  # output, input gradient
        err_fast, err_ref = _rel(runs["fast"][k], exact[k]), _rel(runs["reference"][k], exact[k])
        assert 0 < err_fast <= 2 * err_ref
    err_fast = max(_rel(a, b) for a, b in zip(runs["fast"][4], exact[4]))
    err_ref = max(_rel(a, b) for a, b in zip(runs["reference"][4], exact[4]))
    assert err_fast <= 2 * err_ref
    sunn = copy.deepcopy(base)
    sunn.gradual = False
    with torch.autocast("cpu", dtype=torch.bfloat16):
        sunn_bytes, _ = saved_tensor_bytes(lambda: sunn(x.clone().requires_grad_()))
    out_bytes = x.numel() * 2  # the bfloat16 output, which the fast update keeps
    assert runs["fast"][0] <= sunn_bytes + out_bytes + 16 * 1024 < runs["reference"][0]


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_fast_update_on_products_of_thousands_of_rows_equals_the_straightforward_one(train):
    """At 4x32x32 = 4096 rows the products run through oneDNN on CPU (the small cases
    above stay with torch.mm): outputs, gradients and statistics still match."""
    torch.manual_seed(3)
    fast = randomise_bn(GunnLayer(12, 3, units=2)).train(train)
    ref = copy.deepcopy(fast)
    x = torch.randn(4, 12, 32, 32).contiguous(memory_format=torch.channels_last)
    grad = torch.randn(4, 12, 32, 32)
    _assert_step_matches_the_reference(fast, ref, x, grad)
    with torch.no_grad():
        assert _rel(fast(x), fast._gradual_reference(x)) < 1e-5


@pytest.mark.parametrize("cfg", CONFIGS[:4], ids=lambda c: "-".join(f"{k[0]}{int(v)}" for k, v in c.items()))
def test_folded_batch_norms_give_the_eval_outputs_in_both_update_orders(cfg):
    """``fold_batch_norms`` (what ``convnets.optimize`` does to a GUNN layer) turns every BN
    into its convolution's bias: the same outputs, gradual or simultaneous, fast or not."""
    torch.manual_seed(4)
    cfg = dict(cfg)
    layer = randomise_bn(GunnLayer(12, cfg.pop("segments"), **cfg)).eval()
    folded = copy.deepcopy(layer)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in layer.modules())
    assert folded.fold_batch_norms() == n_bn
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(2, 12, 6, 6)
    with torch.no_grad():
        for gradual in (True, False):
            layer.gradual = folded.gradual = gradual
            want = layer._gradual_reference(x) if gradual else layer(x)
            assert _rel(folded(x), want) < 1e-5
            if gradual:
                assert _rel(folded._gradual_reference(x), want) < 1e-5
    assert folded.fold_batch_norms() == 0  # nothing left to fold


@pytest.mark.parametrize("size", [1, 2, 3, 5], ids=lambda n: f"blocks-of-{n}")
@pytest.mark.parametrize("cfg", [dict(units=1, projection=True, residual=True),
                                 dict(units=2, projection=False, residual=False)],
                         ids=["projection", "two-units-no-identity"])
def test_every_size_of_segment_blocks_gives_the_straightforward_update(monkeypatch, size, cfg):
    """The first products run per block of segments (the columns outside a block in one
    product, the block's own columns per segment): whatever the block size, 1 (segment by
    segment) to P (the whole layer), and whether or not it divides P, training outputs,
    gradients and statistics, and the folded inference, equal the straightforward update."""
    monkeypatch.setattr(gunn_fast, "_blocks", functools.partial(gunn_fast._blocks, size=size))
    torch.manual_seed(5)
    fast = randomise_bn(GunnLayer(20, 5, **cfg)).train()
    ref = copy.deepcopy(fast)
    x = torch.randn(2, 20, 5, 5).contiguous(memory_format=torch.channels_last)
    grad = torch.randn(2, 20, 5, 5)
    _assert_step_matches_the_reference(fast, ref, x, grad)
    fast.eval()
    with torch.no_grad():
        assert _rel(fast(x), fast._gradual_reference(x)) < 1e-5
