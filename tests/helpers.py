"""Small helpers shared by the tests."""
import contextlib
import signal

import torch.distributed as dist
from torch import nn


def n_params(model: nn.Module, with_bn: bool = True) -> int:
    """Parameters of ``model``; ``with_bn=False`` counts as papers that left BN out did."""
    return sum(p.numel() for m in model.modules() for p in m.parameters(recurse=False)
               if with_bn or not isinstance(m, nn.BatchNorm2d))


def randomise_bn(model: nn.Module) -> nn.Module:
    """Non-trivial BN statistics and affine terms, so that eval mode exercises every term and
    a mis-mapped or mis-ordered BN cannot pass a comparison. Returns the model in eval mode."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.data.uniform_(-0.5, 0.5)
            m.running_var.data.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)
    return model.eval()


@contextlib.contextmanager
def within_seconds(seconds: int):
    """Fail with TimeoutError, instead of hanging the suite, where code under test blocks
    (a named pipe opened for reading, a walk through a cycle of links)."""
    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def rendezvous(world_size: int):
    """The environment for the processes of one ``world_size``-process job that a test starts
    itself: MASTER_ADDR and MASTER_PORT of a TCPStore that this process serves for as long as
    the block runs, and TORCHELASTIC_USE_AGENT_STORE, with which every rank's env://
    initialisation connects to that store as a client, as under torchrun's agent. The port is
    bound from the moment the OS picks it until the job is over; nobody binds it again, so no
    other process can take it in between. One store per job: a job started after another
    (a resumed run) takes a new one, with no keys left from the first."""
    store = dist.TCPStore("127.0.0.1", 0, world_size, is_master=True, wait_for_workers=False)
    try:
        yield {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(store.port),
               "TORCHELASTIC_USE_AGENT_STORE": "True"}
    finally:
        del store
