"""Several codebooks in one ASMK index (`rkit index asmk --codebooks N`): each is the one-codebook index of its
seed, search averages their scores, shards reuse all of them, and a damaged file fails with a clear error."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from retrievalkit.configs.search import AsmkConfig, AsmkSearchConfig
from retrievalkit.errors import BadInputError
from retrievalkit.io.asmk import read_asmk_index, read_asmk_indexes
from retrievalkit.io.locals import pack_locals, write_locals
from retrievalkit.io.ranks import read_ranks
from retrievalkit.search.asmk import build_asmk, search_asmk_files
from tests.conftest import run_rkit

DIM = 16


def _locals(tmp_path):
    """12 database images of 4 "scenes" (each image: its scene's 10 descriptor centres, 4 noisy copies of each)
    and 4 queries, one noisier view of each scene. Returns (database path, queries path); the
    codebook training locals are ``train.loc.h5`` beside them."""
    rng = np.random.default_rng(3)
    # each scene: 10 descriptor centres around a scene centre far from the others
    centres = (rng.standard_normal((4, 10, DIM)) + 4 * rng.standard_normal((4, 1, DIM))).astype(np.float32)

    def view(scene, n=40, noise=0.1):
        x = centres[scene][np.arange(n) % 10] + noise * rng.standard_normal((n, DIM)).astype(np.float32)
        return rng.uniform(0, 100, (n, 4)).astype(np.float32), x

    db = pack_locals([f"s{i % 4}/{i}.jpg" for i in range(12)], [view(i % 4) for i in range(12)], DIM,
                     config={"method": "deep"})
    q = pack_locals([f"q{s}.jpg" for s in range(4)], [view(s, 30, 0.15) for s in range(4)], DIM,
                    config={"method": "deep"})
    # the codebook is trained on other descriptors, spread over the same space (as a training set would be)
    train = pack_locals(["t.jpg"], [(np.zeros((400, 4), np.float32),
                                     4 * rng.standard_normal((400, DIM)).astype(np.float32))], DIM,
                        config={"method": "deep"})
    write_locals(tmp_path / "train.loc.h5", train)
    return write_locals(tmp_path / "db.loc.h5", db), write_locals(tmp_path / "q.loc.h5", q)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("codebooks")
    db, q = _locals(tmp)
    train = tmp / "train.loc.h5"
    multi = build_asmk(db, tmp / "multi.h5", AsmkConfig(codebook_size=16, seed=5, codebooks=3), train=train)
    singles = [build_asmk(db, tmp / f"one.{s}.h5", AsmkConfig(codebook_size=16, seed=s), train=train)
               for s in (5, 6, 7)]
    return tmp, db, q, multi, singles


def test_each_codebook_is_the_one_codebook_index_of_its_seed(built):
    _, _, _, multi, singles = built
    names, ivfs = read_asmk_indexes(multi)
    assert len(ivfs) == 3 and ivfs[0].config["seeds"] == [5, 6, 7] and ivfs[0].config["codebooks"] == 3
    assert len({v.config["codebook_id"] for v in ivfs}) == 3  # three different k-means runs
    for ivf, path in zip(ivfs, singles):
        one_names, one = read_asmk_index(path)
        assert one_names == names and ivf.config["codebook_id"] == one.config["codebook_id"]
        for field in ("codebook", "word_offsets", "entry_images", "entry_codes", "image_words"):
            np.testing.assert_array_equal(getattr(ivf, field), getattr(one, field))
    first_names, first = read_asmk_index(multi)  # a one-codebook reader gets the first codebook
    np.testing.assert_array_equal(first.codebook, ivfs[0].codebook)


def test_search_averages_the_codebooks_scores(built):
    tmp, _, q, multi, singles = built
    fused = read_ranks(search_asmk_files(multi, q, tmp / "multi.ranks.h5", AsmkSearchConfig(top_k=12)))
    assert fused.config["codebooks"] == 3
    expected = np.zeros((4, 12))
    for path in singles:
        r = read_ranks(search_asmk_files(path, q, tmp / "one.ranks.h5", AsmkSearchConfig(top_k=12)))
        for qi in range(4):
            ok = r.indices[qi] >= 0
            expected[qi, r.indices[qi][ok]] += r.scores[qi][ok] / 3
    for qi in range(4):
        ok = fused.indices[qi] >= 0
        np.testing.assert_allclose(fused.scores[qi][ok], expected[qi, fused.indices[qi][ok]], rtol=1e-5)
        assert np.all(np.diff(fused.scores[qi][ok]) <= 0)
        top3 = {fused.db_names[j].split("/")[0] for j in fused.indices[qi, :3]}
        assert top3 == {f"s{qi}"}  # the query's scene first


def test_shards_reuse_all_codebooks(built):
    tmp, db, q, multi, _ = built
    shards = [build_asmk(db, tmp / f"sh.{i}.h5", codebook=multi, shard=(i, 2)) for i in (1, 2)]
    assert all(len(read_asmk_indexes(p, codebook_only=True)[1]) == 3 for p in shards)
    whole = read_ranks(search_asmk_files(multi, q, tmp / "w.h5", AsmkSearchConfig(top_k=12)))
    parts = read_ranks(search_asmk_files(shards, q, tmp / "p.h5", AsmkSearchConfig(top_k=12)))
    np.testing.assert_array_equal(parts.indices, whole.indices)
    np.testing.assert_allclose(parts.scores, whole.scores, rtol=1e-5)
    # the first only
    one = build_asmk(db, tmp / "other.h5", AsmkConfig(codebook_size=16, seed=5), train=tmp / "train.loc.h5")
    with pytest.raises(BadInputError, match="other codebooks"):
        search_asmk_files([shards[0], one], q, tmp / "x.h5")


def test_a_missing_codebook_is_a_clear_error(built, tmp_path):
    _, _, _, multi, _ = built
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(multi.read_bytes())
    with h5py.File(damaged, "a") as f:
        del f["codebooks/2"]
    with pytest.raises(BadInputError, match="damaged.h5.*3 codebook"):
        read_asmk_indexes(damaged)


def test_cli_codebooks_option(built, tmp_path):
    tmp, db, q, multi, _ = built
    out = run_rkit("index", "asmk", db, "-o", tmp_path / "a.h5", "--codebook-size", "16", "--codebooks", "2")
    assert len(read_asmk_indexes(out.stdout.strip())[1]) == 2
    p = run_rkit("index", "asmk", db, "-o", tmp_path / "b.h5", "--codebook", multi, "--codebooks", "2", check=False)
    assert p.returncode == 2 and "--codebooks" in p.stderr and not (tmp_path / "b.h5").exists()
    p = run_rkit("index", "asmk", db, "-o", tmp_path / "c.h5", "--codebooks", "0", check=False)
    assert p.returncode == 2 and "codebooks" in p.stderr
