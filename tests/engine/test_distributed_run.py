"""Data-parallel runs end to end: evaluation shared by the processes, counting each test
image once, and a failure on any process ending the whole job with one line."""
import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import Dataset

from convnets.data import open_dataset
from convnets.engine import checkpoint as ckpt
from convnets.engine.config import TrainConfig
from convnets.engine.evaluation import evaluate
from helpers import rendezvous

SIZE = (1, 32, 32)
N_TEST = 37  # odd, and not a multiple of the batch: shards and batches are uneven


class _Recording(Dataset):
    """Writes every index it is asked for to a file of its own process."""

    def __init__(self, base, path):
        self.base, self.path = base, path

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        with open(f"{self.path}.{os.getpid()}", "a") as f:
            f.write(f"{i}\n")
        return self.base[i]

    @property
    def num_classes(self):
        return self.base.num_classes


def _cfg():
    return TrainConfig(model="lenet5", epochs=1, batch_size=8, lr=0.01, device="cpu", workers=0,
                       input_size=list(SIZE))


def _data(record):
    train = open_dataset("synthetic:32:4", "train", input_size=SIZE, train_transform=True)
    test = open_dataset(f"synthetic:{N_TEST}:4", "test", input_size=SIZE, train_transform=False)
    return train, _Recording(test, record)


def _worker(rank, master, run_dir, record):
    from convnets.engine.train import fit

    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", **master)
    fit(_cfg(), run_dir, datasets=_data(record), log=lambda _: None)


def test_two_processes_share_the_evaluation_and_count_each_image_once(tmp_path):
    run, record = str(tmp_path / "run"), str(tmp_path / "seen")
    with rendezvous(2) as master:
        mp.spawn(_worker, args=(master, run, record), nprocs=2, join=True)
    seen = {}
    for name in os.listdir(tmp_path):
        if name.startswith("seen."):
            seen[name] = [int(v) for v in open(tmp_path / name)]
    # Both processes evaluated, each its own images, together every image exactly once.
    assert len(seen) == 2 and all(seen.values())
    every = sorted(i for part in seen.values() for i in part)
    assert every == list(range(N_TEST))

    # The reduced result is that of one process over the whole test set.
    import json

    import convnets

    row = json.loads(open(os.path.join(run, "metrics.jsonl")).readline())
    model = convnets.create_model("lenet5", num_classes=4)
    model.load_state_dict(ckpt.load_weights_file(
        os.path.join(ckpt.latest_checkpoint(run)["dir"], "model.safetensors")))
    test = open_dataset(f"synthetic:{N_TEST}:4", "test", input_size=SIZE, train_transform=False)
    ref = evaluate(model, torch.utils.data.DataLoader(test, batch_size=8), num_classes=4)
    assert row["test_top1_err"] == pytest.approx(ref["top1_err"])
    assert row["test_loss"] == pytest.approx(ref["loss"], rel=1e-5)


def _torchrun(args, tmp_path, timeout=150):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           *args]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=env)
    return proc, time.monotonic() - start


def test_a_bad_out_on_one_process_ends_the_job_with_one_line(tmp_path):
    (tmp_path / "taken").write_text("not a run directory")
    proc, _ = _torchrun(["-m", "convnets", "train", "lenet5", "--data", "synthetic:32",
                         "--epochs", "1", "--batch-size", "8", "--out", "taken"], tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    lines = [line for line in output.splitlines() if line.startswith("convnets: error:")]
    assert lines == ["convnets: error: taken is a file, not a run directory; choose another --out"]
    assert (tmp_path / "taken").read_text() == "not a run directory"  # the user's file is kept


_FAIL_ON_RANK_1 = textwrap.dedent("""
    import os, sys
    import convnets.data
    from convnets.errors import DataError

    real = convnets.data.open_dataset

    class Breaks:
        def __init__(self, base):
            self.base, self.reads = base, 0
        def __len__(self):
            return len(self.base)
        def __getitem__(self, i):
            self.reads += 1
            if self.reads > 20:  # in the second epoch
                raise DataError("cannot read image 7 (a fault on this process only)")
            return self.base[i]
        def __getattr__(self, name):
            return getattr(self.base, name)

    def open_dataset(spec, split, **kw):
        ds = real(spec, split, **kw)
        return Breaks(ds) if split == "train" and os.environ["RANK"] == "1" else ds

    convnets.data.open_dataset = open_dataset
    from convnets.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_a_failure_on_one_process_mid_run_ends_the_job(tmp_path):
    (tmp_path / "job.py").write_text(_FAIL_ON_RANK_1)
    proc, seconds = _torchrun(["job.py", "train", "lenet5", "--data", "synthetic:32",
                               "--epochs", "3", "--batch-size", "8", "--workers", "0",
                               "--out", "run"], tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    lines = [line for line in output.splitlines() if line.startswith("convnets: error:")]
    assert lines == ["convnets: error: (process 1) cannot read image 7 (a fault on this process "
                     "only)"]
    # No process of ours shows a traceback (torchrun prints its own report of the failure).
    assert "]: Traceback" not in output
    # The first epoch was committed; the job did not wait for a timeout to end.
    assert ckpt.latest_checkpoint(tmp_path / "run")["epoch"] == 1
    assert seconds < 120
