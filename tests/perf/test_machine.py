"""The CPU line every benchmark records beside its figures."""
import os

from convnets.perf.machine import cpu_description

ZEN5 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 2
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_bf16

processor\t: 1
model name\t: something else
"""
ZEN3 = ZEN5.replace("26", "25").replace("model\t\t: 2", "model\t\t: 1").replace(" avx512f avx512bw avx512_bf16", "")


def test_names_the_model_family_and_widest_vector_instructions(tmp_path):
    (tmp_path / "zen5").write_text(ZEN5)
    (tmp_path / "zen3").write_text(ZEN3)
    n = os.cpu_count()
    assert cpu_description(str(tmp_path / "zen5")) == f"AMD EPYC (family 26, model 2), {n} CPUs, avx512f avx512_bf16"
    assert cpu_description(str(tmp_path / "zen3")) == f"AMD EPYC (family 25, model 1), {n} CPUs, avx2"


def test_without_cpuinfo_it_still_names_the_machine(tmp_path):
    line = cpu_description(str(tmp_path / "missing"))
    assert line.endswith(f"{os.cpu_count()} CPUs") and len(line) > len(f", {os.cpu_count()} CPUs")
