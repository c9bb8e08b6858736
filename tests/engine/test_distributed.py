"""Data parallelism: 2 gloo processes with batch B each end with the weights of 1 process
with batch 2B.

The model has no batch norm: with it, each process would normalise with the statistics
of its own B images, which is not the same computation as one batch of 2B (SyncBatchNorm
makes it the same, at the price of communication each layer).
"""
import os

import torch
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import TensorDataset

from convnets.engine import distributed as ddp
from convnets.engine.epoch import train_one_epoch
from helpers import rendezvous

B, STEPS, SEED = 8, 4, 5


def _data():
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(2 * B * STEPS, 3, 6, 6, generator=g),
                         torch.randint(0, 4, (2 * B * STEPS,), generator=g))


def _model():
    torch.manual_seed(SEED)
    return nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 4))


def _train(env, batch, device=torch.device("cpu")):
    model = _model()
    net = ddp.wrap_model(model, env, device)
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, nesterov=True, weight_decay=1e-3)
    loader = ddp.make_loader(_data(), batch_size=batch, env=env, train=True, workers=0, seed=SEED)
    for epoch in range(2):  # two epochs: the shuffled order changes with set_epoch
        ddp.set_epoch(loader, epoch, SEED, env.rank)
        stats = train_one_epoch(net, loader, opt, device=device, criterion=nn.CrossEntropyLoss(),
                                env=env, epoch=epoch)
    return model, stats


def _worker(rank, world, master, out):
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), **master)
    env = ddp.setup(torch.device("cpu"))
    try:
        assert env.distributed and env.is_main == (rank == 0)
        model, stats = _train(env, B)
        if env.is_main:
            torch.save({"state": model.state_dict(), "stats": stats}, out)
    finally:
        ddp.cleanup()


def test_two_gloo_processes_match_one_with_twice_the_batch(tmp_path):
    out = str(tmp_path / "rank0.pt")
    with rendezvous(2) as master:
        mp.spawn(_worker, args=(2, master, out), nprocs=2, join=True)
    got = torch.load(out, weights_only=True)

    single, stats = _train(ddp.DistEnv(), 2 * B)
    start = _model().state_dict()
    for k, v in single.state_dict().items():
        assert not torch.allclose(v, start[k])  # training moved the weights
        torch.testing.assert_close(got["state"][k], v, atol=1e-5, rtol=0)
    # Metrics are reduced over processes: the same images, loss and error as one process.
    assert got["stats"]["images"] == stats["images"] == 2 * B * STEPS
    assert got["stats"]["steps"] == stats["steps"] == STEPS
    assert abs(got["stats"]["loss"] - stats["loss"]) < 1e-5
    assert got["stats"]["top1_err"] == stats["top1_err"]


def test_single_process_needs_no_process_group(monkeypatch):
    for var in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    env = ddp.setup(torch.device("cpu"))
    assert not env.distributed and env.is_main and not torch.distributed.is_initialized()
