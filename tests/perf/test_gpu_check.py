"""benchmarks/gpu_check.py's CPU smoke path: the checks run at tiny sizes, each recorded
whatever the others do, into one JSON and one RESULTS.md section. CI runs the whole smoke
run (.ci/run); this runs the in-process checks that are quick."""
import importlib.util
import json
import os
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "gpu_check.py")


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules["gpu_check"]


def test_smoke_run_records_every_check_even_when_one_fails(gpu_check, tmp_path, monkeypatch):
    def broken(ctx):
        raise RuntimeError("CUDA error: out of memory (made up)")
    checks = [c if c[0] != "gunn15_memory" else ("gunn15_memory", c[1], broken)
              for c in gpu_check.CHECKS]
    monkeypatch.setattr(gpu_check, "CHECKS", checks)
    code = gpu_check.main(["--smoke", "--device", "cpu", "--out", str(tmp_path),
                           "--only", "amp_scaler", "gunn15_memory"])
    assert code == 1  # not all passed
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["smoke"] and report["device"] == "cpu"
    amp = report["checks"]["amp_scaler"]
    assert amp["passed"] and amp["fp16"]["scaler_resumed"] and amp["fp16"]["scale"] > 0
    assert amp["bf16"]["finite"]
    failed = report["checks"]["gunn15_memory"]
    assert not failed["passed"] and failed["error"] == "CUDA error: out of memory (made up)"
    section = (tmp_path / "gpu_check.md").read_text()
    assert section.startswith(gpu_check.SECTION)
    assert "| amp_scaler | yes |" in section and "| gunn15_memory | no |" in section


def test_gunn15_memory_check_compares_gunn_with_sunn(gpu_check, tmp_path):
    import torch

    ctx = gpu_check.Context(torch.device("cpu"), gpu_check.SMOKE, str(tmp_path))
    r = gpu_check.check_gunn15_memory(ctx)
    assert r["passed"] and 0.95 < r["gunn15_over_sunn15"] <= 1.05
    assert r["gunn15"]["saved_bytes"] > 0


def test_the_section_replaces_its_predecessor_and_leaves_the_rest(gpu_check, tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text(f"# Results\n\n## Before\nkept\n\n{gpu_check.SECTION}\nold\n\n## After\nkept too\n")
    gpu_check.replace_section(str(path), f"{gpu_check.SECTION}\nnew\n")
    text = path.read_text()
    assert "old" not in text and "new" in text
    assert text.index("## Before") < text.index("new") < text.index("## After")
    assert text.count(gpu_check.SECTION) == 1
