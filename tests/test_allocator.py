"""keep_freed_memory: freed tensor memory is reused without new page faults, the user's
own allocator settings win, and the CLI and the training engine apply it.

Each case runs in a fresh interpreter, since the settings are process-wide and cannot be
undone."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc on Linux")

# Page faults of allocating, touching and freeing a 64 MiB tensor four times, before and
# after the call; the first rounds after the call still fault while the heap grows to the
# size the loop needs (in a training loop: the first steps).
_PROBE = """
import json, resource, sys, torch
from convnets.allocator import keep_freed_memory

def faults():
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        t = torch.empty(16 * 2**20)
        t.fill_(1.0)
        del t
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start

before = faults()
result = keep_freed_memory()
for _ in range(3):
    faults()
print(json.dumps({"before": before, "after": faults(), "result": result,
                  "again": keep_freed_memory()}))
"""


def _run(code: str, **env_changes: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("MALLOC_") or k in ("GLIBC_TUNABLES", "CONVNETS_MALLOC", "LD_PRELOAD"))}
    env.update(env_changes)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_freed_blocks_are_reused_without_new_page_faults():
    got = _run(_PROBE)
    if got["before"] < 4 * 1000:  # 64 MiB is 16,384 small pages; huge pages fault far less
        pytest.skip(f"this kernel maps the blocks with few faults already ({got['before']})")
    assert got["result"] == "applied" and got["again"] == "applied"
    assert got["after"] < got["before"] / 20, got


@pytest.mark.parametrize("env, reason", [
    ({"CONVNETS_MALLOC": "system"}, "CONVNETS_MALLOC=system"),
    ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1000000"}, "GLIBC_TUNABLES sets malloc options"),
    ({"MALLOC_ARENA_MAX_": "2"}, "a MALLOC_*_ variable sets malloc options"),
])
def test_the_users_own_settings_are_left_alone(env, reason):
    got = _run(_PROBE, **env)
    assert got["result"] == reason
    if "GLIBC_TUNABLES" not in env and got["before"] >= 4 * 1000:
        assert got["after"] > got["before"] / 4, got  # still the system's behaviour


_CALLED = "print(json.dumps(allocator.keep_freed_memory.cache_info().currsize))"


def _fit(run_dir, *options: str) -> dict:
    """Whether keep_freed_memory was called in a fresh interpreter that ran one small fit."""
    return _run(
        "import json, torch\nfrom torch.utils.data import TensorDataset\n"
        "from convnets.engine.config import TrainConfig\nfrom convnets.engine.train import fit\n"
        "from convnets import allocator\n"
        "x, y = torch.randn(16, 3, 32, 32), torch.arange(16) % 10\n"
        "cfg = TrainConfig(model='resnet20', epochs=1, batch_size=8, workers=0, device='cpu', "
        "input_size=[3, 32, 32])\n"
        f"fit(cfg, {str(run_dir)!r}, datasets=(TensorDataset(x, y), TensorDataset(x, y)), "
        f"log=lambda s: None, progress=False{''.join(', ' + o for o in options)})\n{_CALLED}")


def test_the_cli_and_the_training_engine_apply_it(tmp_path):
    cli = _run("import json\nfrom convnets.cli import main\nfrom convnets import allocator\n"
               f"main(['models', 'lenet'])\n{_CALLED}")
    assert cli == 1
    assert _fit(tmp_path / "run") == 1


def test_fit_leaves_malloc_alone_when_asked(tmp_path):
    assert _fit(tmp_path / "run", "keep_freed_memory=False") == 0
