"""The allocator setting of extraction: freed large blocks are reused (no fresh pages), defaults come back."""

from __future__ import annotations

import resource

import numpy as np
import pytest

from retrievalkit.extract.allocator import _glibc, retained_heap

pytestmark = pytest.mark.skipif(_glibc() is None, reason="the setting applies to glibc's malloc only")


def _faults_of_reallocations(n=6, mib=64):
    """Minor page faults while a ``mib`` MiB buffer is allocated, written and freed ``n`` times."""
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        a = np.ones(mib * 2**20 // 4, np.float32)
        del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0


def test_retained_heap_reuses_freed_blocks_and_restores_defaults():
    before = _faults_of_reallocations()
    with retained_heap() as applied:
        assert applied
        inside = _faults_of_reallocations()
        with retained_heap():  # nested: the outer block keeps the setting
            pass
        nested_after = _faults_of_reallocations()
    after = _faults_of_reallocations()
    # glibc defaults map each 64 MiB block afresh (faults on every pass); retained, only the first pass faults
    assert inside < before / 2 and nested_after < before / 2
    assert after > 2 * max(nested_after, 1)


def test_disabled_changes_nothing():
    before = _faults_of_reallocations()
    with retained_heap(enabled=False) as applied:
        assert not applied
        inside = _faults_of_reallocations()
    assert inside > before / 2
