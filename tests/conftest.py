import pytest
import torch

from convnets.engine.config import TrainConfig
from convnets.engine.train import fit


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # The suite runs on small shared CPUs: two intra-op threads contend with other processes
    # and run these small convolutions many times slower than one thread does.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def _quiet(_):
    pass


@pytest.fixture(scope="session")
def digits04_run(tmp_path_factory):
    """A run of ResNet-20 at 8x8 on the digits 0-4, one epoch: small, but a real run
    directory as `convnets train` writes it."""
    run = str(tmp_path_factory.mktemp("runs") / "digits04")
    cfg = TrainConfig(model="resnet20", data="digits:0-4", input_size=[3, 8, 8], epochs=1,
                      batch_size=32, workers=0, device="cpu", deterministic=True)
    fit(cfg, run, log=_quiet, progress=False)
    return run
