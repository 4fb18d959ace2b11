"""``rkit merge`` joins only finished shards that tile the input exactly once: an unfinished part, a part with a
row removed, an empty part, overlapping or missing shards are refused with exit 3 naming the part."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from retrievalkit.io.features import read_features
from tests.reliability.rkit_batch import run_batch
from tests.reliability.world import assert_refused, world  # noqa: F401  (fixture)


def rewrite(src, dst, keep_rows=None, done=None):
    """Copy a features file keeping only rows ``keep_rows`` of names/vectors (and setting ``done``)."""
    with h5py.File(src, "r") as fi, h5py.File(dst, "w") as fo:
        for k, v in fi.attrs.items():
            fo.attrs[k] = v
        for key in fi:
            data = fi[key][()]
            if keep_rows is not None and key in ("names", "vectors"):
                data = data[keep_rows]
            fo.create_dataset(key, data=data, dtype=fi[key].dtype)
        if done is not None:
            fo.attrs["done"] = done


@pytest.fixture(scope="module")
def merges(world):  # noqa: F811
    w = world
    d = w.root / "merge"
    d.mkdir()
    p1, p2, p3 = w.shards
    n2 = len(read_features(p2).names)
    partial = d / ".part2.h5.partial"  # what an interrupted `extract --shard 2/3 -o part2.h5` leaves
    rewrite(p2, partial, keep_rows=slice(0, 2), done=2)
    shutil.copy(partial, d / "part2_unfinished.h5")  # the same, renamed by hand
    rewrite(p2, d / "part2_row_removed.h5", keep_rows=np.r_[0, 2:n2])  # 'done' still says all
    rewrite(p2, d / "part2_row_removed_done_fixed.h5", keep_rows=np.r_[0, 2:n2], done=n2 - 1)
    rewrite(p2, d / "part2_empty.h5", keep_rows=slice(0, 0), done=0)
    shutil.copy(p1, d / "part1_again.h5")
    out = d / "merged.h5"
    cases = {
        "unfinished_partial": ["merge", p1, partial, p3, "-o", out],
        "unfinished_renamed": ["merge", p1, d / "part2_unfinished.h5", p3, "-o", out],
        "row_removed": ["merge", p1, d / "part2_row_removed.h5", p3, "-o", out],
        "row_removed_done_fixed": ["merge", p1, d / "part2_row_removed_done_fixed.h5", p3, "-o", out],
        "empty_shard": ["merge", p1, d / "part2_empty.h5", p3, "-o", out],
        "overlapping_shards": ["merge", p1, d / "part1_again.h5", p2, p3, "-o", out],
        "missing_shard": ["merge", p1, p3, "-o", out],
        "missing_last_shard": ["merge", p1, p2, "-o", out],
        "merged_with_its_part": ["merge", w.feats, p2, "-o", out],
    }
    results = run_batch([*cases.values(), ["merge", p3, p1, p2, "-o", out]], w.root)
    return dict(zip([*cases, "ok"], results)), d


@pytest.mark.parametrize("case,part,words", [
    ("unfinished_partial", ".part2.h5.partial", ["unfinished"]),
    ("unfinished_renamed", "part2_unfinished.h5", ["unfinished", "2 of the"]),
    ("row_removed", "part2_row_removed.h5", ["shard range"]),
    ("row_removed_done_fixed", "part2_row_removed_done_fixed.h5", ["unfinished"]),
    ("empty_shard", "part2_empty.h5", []),
    ("overlapping_shards", "part1_again.h5", ["overlap"]),
    ("missing_shard", "part3.h5", ["missing"]),
    ("missing_last_shard", "part2.h5", ["missing"]),
    ("merged_with_its_part", "", []),
])
def test_incomplete_merge_is_refused_naming_the_part(merges, case, part, words):
    results, _ = merges
    line = assert_refused(results[case], 3, *words)
    assert part in line


def test_complete_shards_merge_to_the_unsharded_extraction(merges, world):  # noqa: F811
    results, d = merges
    assert results["ok"].code == 0, results["ok"].stderr
    merged, whole = read_features(d / "merged.h5"), read_features(world.feats)
    assert merged.names == whole.names
    assert np.array_equal(merged.vectors, whole.vectors)
