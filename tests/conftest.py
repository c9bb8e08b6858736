import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_threads():
    # Tests run on small CPUs: keep them deterministic and single-process.
    torch.manual_seed(0)
    yield
