"""Keep freed memory in the process during extraction (glibc's malloc), so that batched CPU forward passes do
not hand their activation buffers back to the kernel and take them again, page by page, on every call.

torch's CPU allocator is plain ``malloc``. glibc serves blocks above its mmap threshold (128 KiB, rising
dynamically to at most 32 MiB) with a fresh ``mmap`` and unmaps them on ``free``; a batch of 8 images at
512 px has activations of 60+ MiB, so every layer of every forward pass maps new pages and takes a minor page
fault per 4 KiB (tens of thousands per image, more system than user time). With mmap off and heap trimming
off the freed blocks stay in the heap and the next pass reuses them: no page faults after the first batch.
``benchmarks/extract_throughput.py --allocator`` measures the options (the threshold raised to its 32 MiB
maximum is not enough for batches of 8 and more).

The settings apply while :func:`retained_heap` is open and are put back afterwards (glibc's defaults, then
``malloc_trim`` returns the heap's free top to the system). Other C libraries: nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from contextlib import contextmanager

# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
# glibc's defaults, restored on exit
_DEFAULT_TRIM = 128 * 1024
_DEFAULT_MMAP_MAX = 65536
_INT_MAX = 2**31 - 1

_lock = threading.Lock()
_depth = 0


def _glibc():
    """The C library when it is glibc (``mallopt`` and ``malloc_trim`` present), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018  (only glibc has it)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except (OSError, AttributeError):
        return None


def keep_freed_memory(libc=None) -> bool:
    """Turn off mmap for large blocks and heap trimming: freed memory is reused by the next allocation.
    Returns whether the settings were applied (False: not glibc)."""
    libc = libc or _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, _INT_MAX))


def restore_defaults(libc=None) -> None:
    """glibc's defaults again (fixed thresholds), and the free top of the heap back to the system."""
    libc = libc or _glibc()
    if libc is None:
        return
    libc.mallopt(M_MMAP_MAX, _DEFAULT_MMAP_MAX)
    libc.mallopt(M_TRIM_THRESHOLD, _DEFAULT_TRIM)
    libc.malloc_trim(0)


@contextmanager
def retained_heap(enabled: bool = True):
    """Keep freed memory in the process inside the ``with`` block (nested blocks: the outermost restores)."""
    global _depth
    libc = _glibc() if enabled else None
    with _lock:
        if libc is not None and _depth == 0:
            keep_freed_memory(libc)
        _depth += 1
    try:
        yield libc is not None
    finally:
        with _lock:
            _depth -= 1
            if libc is not None and _depth == 0:
                restore_defaults(libc)


__all__ = ["keep_freed_memory", "restore_defaults", "retained_heap"]
