"""Which CPU a measurement ran on, in one line.

Speed ratios on this kind of machine depend on the processor more than on anything in the
code (two runs of the same benchmark a day apart landed on an AVX-512 CPU and on an AVX2
one, whose float32 products differ by 1.4x and whose bfloat16 products by orders of
magnitude), so every benchmark records it beside its figures.
"""
from __future__ import annotations

import os
import platform

__all__ = ["cpu_description"]

_VECTOR_FLAGS = ("avx512f", "avx512_bf16", "amx_bf16", "avx2")


def _cpuinfo(path: str) -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_description(cpuinfo: str = "/proc/cpuinfo") -> str:
    """E.g. ``AMD EPYC (family 25, model 1), 2 CPUs, avx2``: the model name, its family and
    model numbers, the number of CPUs and the widest vector instructions it offers."""
    info = _cpuinfo(cpuinfo)
    name = info.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in info:
        name += f" (family {info['cpu family']}, model {info.get('model', '?')})"
    flags = set(info.get("flags", "").split())
    vector = [f for f in _VECTOR_FLAGS if f in flags]
    if "avx512f" in vector:  # AVX-512 implies AVX2
        vector = [f for f in vector if f != "avx2"]
    return f"{name}, {os.cpu_count()} CPUs" + (f", {' '.join(vector)}" if vector else "")
