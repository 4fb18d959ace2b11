"""The allocator setting of extraction: large blocks come from the heap (reused after free), not from fresh
mmaps; glibc's defaults come back afterwards."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from retrievalkit.extract.allocator import _glibc, retained_heap

pytestmark = pytest.mark.skipif(_glibc() is None or not hasattr(_glibc(), "mallinfo2"),
                                reason="the setting applies to glibc's malloc only (mallinfo2: glibc >= 2.33)")


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _mmapped_bytes_while_holding(mib=64):
    """Bytes glibc holds in mmapped blocks while a ``mib`` MiB array is alive, minus those before."""
    libc = _glibc()
    libc.mallinfo2.restype = _Mallinfo2
    before = libc.mallinfo2().hblkhd
    a = np.ones(mib * 2**20 // 4, np.float32)
    during = libc.mallinfo2().hblkhd
    del a
    return during - before


def test_retained_heap_serves_large_blocks_from_the_heap_and_restores_defaults():
    assert _mmapped_bytes_while_holding() >= 64 * 2**20  # glibc's default: a block this large is an mmap
    with retained_heap() as applied:
        assert applied
        assert _mmapped_bytes_while_holding() == 0
        with retained_heap():  # nested: the outer block keeps the setting
            pass
        assert _mmapped_bytes_while_holding() == 0
    assert _mmapped_bytes_while_holding() >= 64 * 2**20


def test_disabled_changes_nothing():
    with retained_heap(enabled=False) as applied:
        assert not applied
        assert _mmapped_bytes_while_holding() >= 64 * 2**20
