"""`convnets benchmark`: the figures agree with each other and with the FLOP counter; bad
input is one line and exit 2. Nothing here asserts a speed."""
import json

import pytest

from convnets.cli import main
from convnets.perf.benchmark import benchmark, counterpart
from convnets.perf.profile import count_flops

TINY = ["--input-size", "32", "--batch", "2", "--warmup", "1", "--repeats", "2"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def check_side(side, batch, flops, mode, ceiling):
    assert len(side["latencies_s"]) == 2
    assert side["median_latency_s"] == pytest.approx(sorted(side["latencies_s"])[0] / 2
                                                     + sorted(side["latencies_s"])[1] / 2)
    assert side["min_latency_s"] <= side["median_latency_s"] <= side["max_latency_s"]
    assert side["images_per_s"] == pytest.approx(batch / side["median_latency_s"])
    assert side["min_images_per_s"] == pytest.approx(batch / side["max_latency_s"])
    assert side["flops_per_image"] == flops
    assert side["flops_per_step"] == flops * batch * (3 if mode == "train" else 1)
    assert side["achieved_gflops"] == pytest.approx(side["flops_per_step"] / side["median_latency_s"] / 1e9)
    assert side["fraction_of_ceiling"] == pytest.approx(side["achieved_gflops"] / ceiling)


def test_json_infer_fields_agree_with_the_counter(capsys):
    code, out, _ = run(capsys, "benchmark", "lenet5", *TINY, "--device", "cpu", "--json")
    assert code == 0
    r = json.loads(out)
    assert (r["model"], r["mode"], r["device"], r["batch"], r["input_size"]) == \
        ("lenet5", "infer", "cpu", 2, [1, 32, 32])
    assert r["ceiling_gflops"] > 0 and r["theirs"] is None and r["ratio"] is None
    check_side(r["ours"], 2, count_flops("lenet5", tuple(r["input_size"])), "infer", r["ceiling_gflops"])
    assert r["ours"]["saved_bytes"] is None


def test_train_mode_reports_saved_bytes(capsys):
    code, out, _ = run(capsys, "benchmark", "resnet20", *TINY, "--mode", "train", "--device", "cpu",
                       "--json")
    assert code == 0
    r = json.loads(out)
    check_side(r["ours"], 2, count_flops("resnet20", (3, 32, 32)), "train", r["ceiling_gflops"])
    # at least the input of the first convolution (2 x 3 x 32 x 32 fp32) is kept for backward
    assert r["ours"]["saved_bytes"] > 2 * 3 * 32 * 32 * 4


def test_compare_ratio_is_the_ratio_of_medians():
    r = benchmark("resnet18", compare="torchvision", input_size=32, batch=2, warmup=1, repeats=2,
                  device="cpu", ceiling_size=128).to_dict()
    assert r["theirs"]["name"] == "resnet18" and r["theirs"]["source"] == "torchvision"
    # same architecture, same count
    assert r["theirs"]["flops_per_image"] == r["ours"]["flops_per_image"] == count_flops("resnet18", (3, 32, 32))
    assert r["ratio"] == pytest.approx(r["ours"]["images_per_s"] / r["theirs"]["images_per_s"])
    assert r["ratio"] == pytest.approx(r["theirs"]["median_latency_s"] / r["ours"]["median_latency_s"])


def test_table_prints_both_sides_and_the_ratio(capsys):
    code, out, _ = run(capsys, "benchmark", "resnet18", *TINY, "--device", "cpu", "--compare", "torchvision",
                       "--channels-last", "--amp", "bf16")
    assert code == 0
    assert "ratio ours/theirs" in out and "torchvision" in out and "precision=bf16" in out


def test_gunn_compares_against_its_sunn_twin_by_default():
    assert counterpart("gunn18", "sunn") == "sunn18"
    assert counterpart("inception_v4", "timm") == "inception_v4"
    assert counterpart("seresnet50", "timm") == "seresnet50"


@pytest.mark.parametrize("argv, flag", [
    (["nosuchnet"], "nosuchnet"),
    (["lenet5", "--batch", "0"], "--batch"),
    (["lenet5", "--repeats", "0"], "--repeats"),
    (["lenet5", "--amp", "fp16", "--device", "cpu"], "--amp"),
    (["lenet5", "--compare", "timm"], "--compare"),
    (["gunn15", "--compare", "torchvision"], "--compare"),
    (["lenet5", "--mode", "train", "--optimize"], "--optimize"),
    (["lenet5", "--input-size", "4"], "--input-size"),
    (["lenet5", "--device", "tpu"], "--device"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, flag):
    code, out, err = run(capsys, "benchmark", *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and flag in err, err


def test_timm_missing_is_one_line(capsys, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now raises ImportError
    code, _, err = run(capsys, "benchmark", "seresnet50", *TINY, "--device", "cpu", "--compare", "timm")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "timm" in err
