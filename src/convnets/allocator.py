"""Keep freed tensor memory in the process for reuse (glibc's malloc, Linux).

PyTorch's CPU tensors come from the C library's ``malloc``. Under glibc's defaults a
block of more than a few hundred kilobytes is mapped from the kernel when allocated and
unmapped when freed, and free memory at the top of the heap is handed back. A training
step allocates and frees the same activation and gradient buffers every time, so each
step pays the kernel to map and zero those pages again: measured here, a ResNet-50
training step at batch 16 took about 270,000 minor page faults and 0.7 s of kernel time
(of 3-5 s), ResNet-20 at batch 64 a few thousand faults per step. With the two settings
below the faults all but vanish (about 5,000 for the ResNet-50 step, the first
allocations of new sizes) and the step is 10-20% faster; see benchmarks/RESULTS.md.

The settings, through ``mallopt``: no ``mmap`` for large blocks (``M_MMAP_MAX = 0``:
every block comes from the heap, where a freed one is reused by the next request of its
size) and no trimming of the heap below 2 GiB of free space at its top
(``M_TRIM_THRESHOLD``). The price: the process keeps its peak memory until it exits
rather than returning freed blocks to the system, which is what a training or serving
process needs anyway. jemalloc and tcmalloc, which PyTorch's tuning guide suggests,
reach the same end through ``LD_PRELOAD``; this needs nothing installed.

Nothing is changed when the C library is not glibc, when the user already tunes the
allocator (``GLIBC_TUNABLES`` naming malloc, a ``MALLOC_*_`` variable, or another
allocator in ``LD_PRELOAD``), or when ``CONVNETS_MALLOC=system`` asks to keep the
defaults.
"""
from __future__ import annotations

import ctypes
import functools
import os
import sys

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD = -1  # glibc's malloc.h
_M_MMAP_MAX = -4
_TRIM_BYTES = 2**31 - 1  # mallopt takes an int: the largest, 2 GiB

def _reason_to_leave_alone() -> str | None:
    if not sys.platform.startswith("linux"):
        return f"not Linux ({sys.platform})"
    if os.environ.get("CONVNETS_MALLOC", "").lower() == "system":
        return "CONVNETS_MALLOC=system"
    if "malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return "GLIBC_TUNABLES sets malloc options"
    if any(k.startswith("MALLOC_") and k.endswith("_") for k in os.environ):
        return "a MALLOC_*_ variable sets malloc options"
    preload = os.environ.get("LD_PRELOAD", "")
    if any(name in preload for name in ("jemalloc", "tcmalloc", "mimalloc")):
        return "another allocator is preloaded"
    return None


@functools.cache
def keep_freed_memory() -> str:
    """Apply the settings once per process; returns what was done: ``"applied"``
    (now or by an earlier call) or why nothing was changed."""
    reason = _reason_to_leave_alone()
    if reason is not None:
        return reason
    libc = ctypes.CDLL(None)  # the symbols the process already has, its C library's among them
    if not hasattr(libc, "gnu_get_libc_version"):  # glibc only; musl and others lack it
        return "the C library is not glibc"
    ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_BYTES) == 1
    return "applied" if ok else "mallopt refused the settings"
