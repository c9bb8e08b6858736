"""Synchronised batch norm: 2 gloo processes x batch B train as 1 process x batch 2B does.

GUNN's fast update and memory-efficient DenseNet run batch norm on slices of their layers
themselves (GUNN with a hand-written backward, DenseNet recomputing it in backward); with
``--sync-bn`` those paths must synchronise as the layers do. Each family trains a few SGD
steps in 2 processes with synchronised batch norm, and must end with the weights, running
statistics and batch counts of one process with twice the batch; the same 2 processes
without synchronisation must not (so the comparison can tell). Also: processes with unequal
shares, the layer against BatchNorm2d in one process, and ``convnets train --sync-bn`` in
2 processes.
"""
import copy
import os

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from convnets.cli import main
from convnets.engine import distributed as ddp
from convnets.models import gunn
from convnets.models.batchnorm import SyncBatchNorm2d, sync_batch_norm, sync_group
from convnets.models.densenet import DenseNet
from convnets.models.layers import ConvBNAct
from helpers import rendezvous

B, STEPS, SEED, CLASSES = 4, 3, 7, 4


def _gunn() -> nn.Module:
    # A small CIFAR-style GunnNet: two GUNN layers with the projection shortcut and 2 units
    # (every branch of the fast update: the joined first batch norm, the further units).
    return nn.Sequential(
        ConvBNAct(3, 8, 3), gunn.GunnLayer(8, 2, units=2), ConvBNAct(8, 12), nn.AvgPool2d(2),
        gunn.GunnLayer(12, 3, units=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(12, CLASSES))


def _densenet() -> nn.Module:
    return DenseNet(growth_rate=4, block_config=(2, 2), num_init_features=8, stem="cifar",
                    memory_efficient=True, num_classes=CLASSES)


FAMILIES = {"gunn": _gunn, "densenet": _densenet}


def _data():
    g = torch.Generator().manual_seed(0)
    return (torch.randn(2 * B * STEPS, 3, 8, 8, generator=g),
            torch.randint(0, CLASSES, (2 * B * STEPS,), generator=g))


def _train(family: str, env: ddp.DistEnv, sync_bn: bool) -> dict[str, torch.Tensor]:
    """STEPS SGD steps; step k uses images [2kB, 2(k+1)B), split in halves over 2 processes."""
    torch.manual_seed(SEED)
    model = FAMILIES[family]()
    net = ddp.wrap_model(model, env, torch.device("cpu"), sync_bn=sync_bn)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    x, y = _data()
    per = 2 * B // env.world_size
    for k in range(STEPS):
        lo = 2 * B * k + env.rank * per
        loss = F.cross_entropy(net(x[lo:lo + per]), y[lo:lo + per])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.clone() for k, v in model.state_dict().items()}


def _uneven_data():
    g = torch.Generator().manual_seed(3)
    return torch.randn(8, 3, 4, 4, generator=g) * 2 + 1, torch.randn(8, 3, 4, 4, generator=g)


UNEVEN = [slice(0, 3), slice(3, 8)]  # rank 0 holds 3 images, rank 1 holds 5


def _layer_step(bn: nn.Module, rows: slice = slice(None)):
    """Output, input gradient, weight and bias gradients and running statistics of one
    training step of ``bn`` on ``rows`` of the uneven batch (loss: a weighted sum)."""
    x, weights = _uneven_data()
    x = x[rows].clone().requires_grad_()
    y = bn.train()(x)
    (y * weights[rows]).sum().backward()
    return (y.detach(), x.grad, torch.cat([bn.weight.grad, bn.bias.grad]),
            torch.cat([bn.running_mean, bn.running_var]))


def _worker(rank: int, world: int, master: dict[str, str], out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), **master)
    env = ddp.setup(torch.device("cpu"))
    try:
        torch.manual_seed(0)
        y, dx, grads, stats = _layer_step(SyncBatchNorm2d(3), UNEVEN[rank])
        torch.distributed.all_reduce(grads)  # the loss is the sum over both processes
        results = {"uneven": (y, dx, grads, stats)}
        for family in FAMILIES:
            for sync_bn in (True, False):
                results[family, sync_bn] = _train(family, env, sync_bn)
        # The fast update is what ran for GUNN: every GUNN layer qualifies, synchronised.
        net = ddp.convert_sync_batchnorm(_gunn().train())
        results["fast"] = [gunn._fast_supported(layer)
                           and sync_group(layer.units[0].bn1) is not None
                           for layer in net.modules() if isinstance(layer, gunn.GunnLayer)]
        # The straightforward gradual update (batch norm on slices of each layer) as well.
        fast_supported, gunn._fast_supported = gunn._fast_supported, lambda layer: False
        try:
            results["gunn-reference", True] = _train("gunn", env, True)
        finally:
            gunn._fast_supported = fast_supported
        # The command, as torchrun would start it in each process (it joins the process group
        # that is already there, and leaves it at the end).
        results["cli"] = main(["train", "resnet20", "--data", "synthetic:32", "--epochs", "1",
                               "--batch-size", "8", "--input-size", "16", "--sync-bn",
                               "--workers", "0", "--out", f"{out}.run"])
        torch.save(results, f"{out}.{rank}")
    finally:
        ddp.cleanup()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("sync_bn") / "state")
    with rendezvous(2) as master:
        mp.spawn(_worker, args=(2, master, out), nprocs=2, join=True)
    return out, [torch.load(f"{out}.{rank}", weights_only=True) for rank in range(2)]


def _max_diff(a: dict, b: dict, keys) -> float:
    return max((a[k].double() - b[k].double()).abs().max().item() for k in keys)


@pytest.mark.parametrize("family,path", [("gunn", "gunn"), ("gunn", "gunn-reference"),
                                         ("densenet", "densenet")])
def test_two_synced_processes_train_as_one_with_twice_the_batch(two_processes, family, path):
    _, two_processes = two_processes
    single = _train(family, ddp.DistEnv(), sync_bn=False)
    start = {k: v.clone() for k, v in FAMILIES[family]().state_dict().items()}
    assert two_processes[0]["fast"] == [True, True]
    floats = [k for k, v in single.items() if v.is_floating_point()]
    stats = [k for k in floats if k.endswith(("running_mean", "running_var"))]
    counts = [k for k in single if k.endswith("num_batches_tracked")]
    assert stats and counts and _max_diff(single, start, stats) > 0.1
    for rank, results in enumerate(two_processes):
        synced, alone = results[path, True], results[family, False]
        assert set(synced) == set(single)
        for k in floats:
            torch.testing.assert_close(synced[k], single[k], rtol=1e-4, atol=2e-5,
                                       msg=lambda m: f"rank {rank}, {k}: {m}")
        for k in counts:
            assert synced[k].item() == single[k].item() == STEPS, k
        # Each process normalising its own half is measurably another computation.
        assert _max_diff(alone, single, stats) > 1e-2
        assert _max_diff(alone, single, [k for k in floats if k not in stats]) > 1e-3


def test_processes_with_unequal_shares_normalise_the_whole_batch(two_processes):
    # Counts differ per process: each normalises with the statistics of all 8 images, and
    # the gradients are those of batch norm over all 8.
    _, results = two_processes
    torch.manual_seed(0)
    y, dx, grads, stats = _layer_step(nn.BatchNorm2d(3))
    for rank, rows in enumerate(UNEVEN):
        got_y, got_dx, got_grads, got_stats = results[rank]["uneven"]
        torch.testing.assert_close(got_y, y[rows], rtol=0, atol=1e-5)
        torch.testing.assert_close(got_dx, dx[rows], rtol=0, atol=1e-5)
        torch.testing.assert_close(got_grads, grads, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got_stats, stats, rtol=0, atol=1e-6)


# --- one process: the synchronised layer is BatchNorm2d ----------------------------------

def _bn_pair(momentum=0.1):
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(5, momentum=momentum)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    sync = ddp.convert_sync_batchnorm(nn.Sequential(copy.deepcopy(bn)))[0]
    assert type(sync) is SyncBatchNorm2d
    return bn, sync


def _step(bn, x, dy):
    x = x.clone().requires_grad_()
    y = bn(x)
    y.backward(dy)
    state = {k: v.clone() for k, v in bn.state_dict().items()}
    return y, x.grad, bn.weight.grad, bn.bias.grad, state


@pytest.mark.parametrize("momentum", [0.1, None])
def test_synchronised_layer_equals_batch_norm_in_one_process(momentum):
    bn, sync = _bn_pair(momentum)
    x, dy = torch.randn(4, 5, 3, 3) * 3 + 1, torch.randn(4, 5, 3, 3)
    for mode in ("train", "train", "eval"):
        bn.train(mode == "train"), sync.train(mode == "train")
        bn.zero_grad(), sync.zero_grad()
        ref, got = _step(bn, x, dy), _step(sync, x, dy)
        for a, b in zip(ref[:4], got[:4]):
            assert torch.equal(a, b), mode
        assert ref[4].keys() == got[4].keys()
        assert all(torch.equal(ref[4][k], got[4][k]) for k in ref[4]), mode


def test_the_synchronised_computation_is_batch_norm_with_its_gradients():
    # The code the processes run, here over one process: outputs, running statistics and
    # gradients as F.batch_norm's, and analytic gradients equal to finite differences.
    torch.manual_seed(0)
    x = (torch.randn(3, 4, 5, 5, dtype=torch.float64) * 2 + 5).requires_grad_()
    w = torch.rand(4, dtype=torch.float64).add_(0.5).requires_grad_()
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    mean, var = torch.randn(4, dtype=torch.float64), torch.rand(4, dtype=torch.float64) + 0.5
    m1, v1, m2, v2 = mean.clone(), var.clone(), mean.clone(), var.clone()
    dy = torch.randn(3, 4, 5, 5, dtype=torch.float64)
    ref = F.batch_norm(x, m1, v1, w, b, True, 0.3, 1e-5)
    got = sync_batch_norm(x, w, b, m2, v2, 0.3, 1e-5, None)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)
    torch.testing.assert_close((m2, v2), (m1, v1), rtol=0, atol=1e-12)
    torch.testing.assert_close(torch.autograd.grad(got, (x, w, b), dy),
                               torch.autograd.grad(ref, (x, w, b), dy), rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda x, w, b: sync_batch_norm(x, w, b, None, None, 0.1, 1e-5, None), (x, w, b))


def test_converter_shares_parameters_and_refuses_other_batch_norms():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.SyncBatchNorm(4))
    weight, running = model[1].weight, model[1].running_mean
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert ddp.convert_sync_batchnorm(model) is model
    assert type(model[1]) is SyncBatchNorm2d and type(model[3]) is SyncBatchNorm2d
    assert model[1].weight is weight and model[1].running_mean is running
    assert model.state_dict().keys() == state.keys()
    with pytest.raises(TypeError, match="BatchNorm1d"):
        ddp.convert_sync_batchnorm(nn.Sequential(nn.BatchNorm1d(3)))


def test_batch_norm_on_slices_refuses_another_layer_type():
    # GUNN's segments normalise through slices of their layers' batch norms; PyTorch's
    # nn.SyncBatchNorm (synchronising only in its own forward) is refused, not bypassed.
    layer = nn.SyncBatchNorm.convert_sync_batchnorm(gunn.GunnLayer(4, 2).train())
    with pytest.raises(TypeError, match="convert_sync_batchnorm.*got SyncBatchNorm"):
        layer(torch.randn(2, 4, 3, 3))


def test_train_command_with_sync_bn_in_two_gloo_processes(two_processes):
    out, results = two_processes
    assert [r["cli"] for r in results] == [0, 0]
    assert os.path.exists(f"{out}.run/config.json")
