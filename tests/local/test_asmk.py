"""ASMK*: bit packing, the kernel on hand-made descriptors, the inverted file, empty queries."""

from __future__ import annotations

import numpy as np
import pytest

from retrievalkit.search.asmk import (
    InvertedFileBuilder,
    Quantizer,
    aggregate,
    auto_codebook_size,
    hamming_packed,
    pack_bits,
    query_scores,
    search_asmk,
    selectivity,
    top_k,
    unpack_bits,
)


@pytest.mark.parametrize("dim", [128, 8, 13])
def test_pack_bits_round_trip(dim):
    rng = np.random.default_rng(dim)
    x = rng.standard_normal((50, dim)).astype(np.float32)
    codes = pack_bits(x)
    assert codes.dtype == np.uint8 and codes.shape == (50, (dim + 7) // 8)
    np.testing.assert_array_equal(unpack_bits(codes, dim), x > 0)
    if dim == 128:
        assert codes.shape[1] == 16  # 128 bits -> 16 bytes
    # Hamming distance on packed codes equals the count of differing signs
    y = rng.standard_normal((50, dim))
    expect = ((x > 0) != (y > 0)).sum(1)
    np.testing.assert_array_equal(hamming_packed(codes, pack_bits(y)), expect)


def test_selectivity():
    u = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(selectivity(u, 3.0, 0.0), [0, 0, 0, 0.125, 1.0])
    np.testing.assert_allclose(selectivity(u, 1.0, -1.0), u)


def test_aggregate_sums_residuals_per_image_and_word():
    codebook = np.array([[0, 0, 0, 0], [10, 10, 10, 10]], np.float32)
    x = np.array([[1, -2, 0.5, 0], [1, 1, -1, 0], [11, 9, 10, 12]], np.float32)
    words = np.array([[0], [0], [1]])
    img, w, codes = aggregate(x, words, np.array([0, 0, 1]), codebook, binary=False)
    np.testing.assert_array_equal(img, [0, 1])
    np.testing.assert_array_equal(w, [0, 1])
    s0 = np.array([2, -1, -0.5, 0]) / np.linalg.norm([2, -1, -0.5, 0])
    s1 = np.array([1, -1, 0, 2]) / np.linalg.norm([1, -1, 0, 2])
    np.testing.assert_allclose(codes, [s0, s1], atol=1e-6)
    _, _, bits = aggregate(x, words, np.array([0, 0, 1]), codebook, binary=True)
    np.testing.assert_array_equal(unpack_bits(bits, 4), [[1, 0, 0, 0], [1, 0, 0, 1]])


def _reference_asmk(codebook, qx, q_ma, dbs, alpha=3.0, tau=0.0):
    """A slow, loop-based ASMK* written from the paper's formula, as the reference."""
    dim = codebook.shape[1]

    def agg(x, ma):
        d = ((x[:, None, :] - codebook[None]) ** 2).sum(-1)
        nn = np.argsort(d, axis=1, kind="stable")[:, :ma]
        out = {}
        for i in range(x.shape[0]):
            for c in nn[i]:
                out[c] = out.get(c, 0) + (x[i] - codebook[c])
        return {c: v > 0 for c, v in out.items()}

    q = agg(qx, q_ma)
    scores = []
    for x in dbs:
        d = agg(x, 1)
        s = 0.0
        for c, b in q.items():
            if c in d:
                u = 1 - 2 * (b != d[c]).sum() / dim
                s += u**alpha if u >= tau else 0.0
        scores.append(s / np.sqrt(len(q) * len(d)) if d and q else 0.0)
    return np.array(scores)


@pytest.mark.parametrize("ma", [1, 3])
def test_kernel_matches_reference_on_hand_made_data(ma):
    rng = np.random.default_rng(ma)
    dim = 16
    codebook = rng.standard_normal((6, dim)).astype(np.float32) * 3
    # database images: descriptors around the words; image 0 is the query itself
    qx = (codebook[[0, 1, 2, 2]] + rng.standard_normal((4, dim)) * 0.5).astype(np.float32)
    dbs = [qx.copy(),
           (codebook[[0, 3, 4]] + rng.standard_normal((3, dim)) * 0.5).astype(np.float32),
           (codebook[[5, 5]] + rng.standard_normal((2, dim)) * 0.5).astype(np.float32),
           np.zeros((0, dim), np.float32)]
    b = InvertedFileBuilder(codebook, ma=1)
    b.add(np.concatenate(dbs[:2]), np.array([0, 4, 7]))  # two chunks, as --chunk does
    b.add(np.concatenate(dbs[2:]), np.array([0, 2, 2]))
    ivf = b.finish()
    assert ivf.n_images == 4 and ivf.image_words[3] == 0
    got = query_scores(ivf, Quantizer(codebook), qx, ma=ma)
    want = _reference_asmk(codebook, qx, ma, dbs)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    assert np.argmax(got) == 0
    if ma == 1:  # a copy has the same words and codes: normalised self-similarity 1; no shared word: 0
        assert got[0] == pytest.approx(1.0)
        assert got[2] == 0.0
    assert got[3] == 0.0  # an image without features


def test_search_empty_query_gives_empty_result():
    rng = np.random.default_rng(0)
    codebook = rng.standard_normal((8, 16)).astype(np.float32)
    x = rng.standard_normal((30, 16)).astype(np.float32)
    b = InvertedFileBuilder(codebook)
    b.add(x, np.array([0, 10, 20, 30]))
    ivf = b.finish()
    qx = np.concatenate([np.zeros((0, 16), np.float32), x[:10]])
    sc, idx = search_asmk(ivf, qx, np.array([0, 0, 10]), k=5, ma=1)  # query 0: no features
    assert (idx[0] == -1).all() and (sc[0] == 0).all()
    assert idx[1, 0] == 0 and sc[1, 0] == pytest.approx(1.0)


def test_top_k_and_codebook_size():
    s = np.array([0.1, 0.5, 0.5, 0.9, 0.0])
    v, i = top_k(s, 3)
    np.testing.assert_array_equal(i, [3, 1, 2])
    np.testing.assert_allclose(v, [0.9, 0.5, 0.5])
    assert auto_codebook_size(10) == 256 and auto_codebook_size(10**9) == 65536
    assert auto_codebook_size(1_000_000) == 4096


def _posting_by_posting_scores(ivf, qw, qc, alpha=3.0, tau=0.0):
    """Scores as the scorer before the lookup table: one word_similarity (a float64 power) per posting."""
    from retrievalkit.search.asmk import word_similarity

    scores = np.zeros(ivf.n_images)
    for w, code in zip(qw, qc):
        a, b = ivf.word_offsets[w], ivf.word_offsets[w + 1]
        if b > a:
            s = word_similarity(ivf.entry_codes[a:b], np.repeat(code[None], b - a, 0), ivf.dim, alpha, tau)
            scores += np.bincount(ivf.entry_images[a:b], weights=s, minlength=ivf.n_images)
    return scores / np.sqrt(np.maximum(ivf.image_words, 1) * len(qw))


@pytest.mark.parametrize("dim,alpha,tau,step", [(128, 3.0, 0.0, 1 << 15), (128, 3.0, 0.0, 37), (32, 3.0, 0.0, 100),
                                                (13, 1.0, -0.5, 1 << 15), (64, 2.0, 0.25, 1)])
def test_fast_scorer_equals_posting_by_posting_reference(monkeypatch, dim, alpha, tau, step):
    """The table/popcount scorer (uint64 / uint32 / byte words; in one step or many) gives the reference's
    scores and top-k."""
    from retrievalkit.search.asmk import ivf as ivf_module

    monkeypatch.setattr(ivf_module, "POSTINGS_PER_STEP", step)
    rng = np.random.default_rng(dim)
    codebook = rng.standard_normal((64, dim)).astype(np.float32)
    n, per = 300, 20
    x = (codebook[rng.integers(0, 64, n * per)] + rng.standard_normal((n * per, dim))).astype(np.float32)
    b = InvertedFileBuilder(codebook, ma=1)
    b.add(x, np.arange(0, n * per + 1, per))
    ivf = b.finish()
    qz = Quantizer(codebook)
    for qi in (0, 17, 299):
        qx = x[qi * per:(qi + 1) * per] + 0.3 * rng.standard_normal((per, dim)).astype(np.float32)
        got = query_scores(ivf, qz, qx, ma=3, alpha=alpha, tau=tau)
        _, qw, qc = aggregate(qx, qz.assign(qx, 3), np.zeros(per, np.int64), codebook, binary=True)
        want = _posting_by_posting_scores(ivf, qw, qc, alpha, tau)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
        if step == 1 << 15:
            whole = got
        else:  # several steps: the same bits as one step
            monkeypatch.setattr(ivf_module, "POSTINGS_PER_STEP", 1 << 30)
            whole = query_scores(ivf, qz, qx, ma=3, alpha=alpha, tau=tau)
            monkeypatch.setattr(ivf_module, "POSTINGS_PER_STEP", step)
        np.testing.assert_array_equal(got, whole)
        assert (got > 0).sum() > 10  # the queries do reach many images
        g, w = top_k(got, 20), top_k(want, 20)
        np.testing.assert_array_equal(g.ids, w.ids)


def test_pair_popcount_table_sums_the_two_counts():
    """128-bit codes: the two 64-bit popcounts read as one uint16 index give σ of their sum."""
    from retrievalkit.search.asmk.ivf import _distance_table
    from retrievalkit.search.asmk.kernel import selectivity_table

    pair, single = _distance_table(128, 2, 3.0, 0.0), selectivity_table(128, 3.0, 0.0)
    c = np.array([[lo, hi] for lo in range(65) for hi in range(65)], np.uint8)
    np.testing.assert_array_equal(pair[c.view(np.uint16).ravel()], single[c.sum(axis=1)])
    assert not pair.flags.writeable  # cached: nobody may change it


@pytest.mark.parametrize("alpha,step", [(1.5, 7), (3.0, 1 << 15), (0.7, 1000)])
def test_scores_equal_one_bincount_in_posting_order(monkeypatch, alpha, step):
    """The blocked scorer adds σ in posting order, as one bincount over all the query's postings would:
    the same bits, also for a non-integer α, where other summation orders round differently."""
    from retrievalkit.search.asmk import ivf as ivf_module
    from retrievalkit.search.asmk import word_similarity

    monkeypatch.setattr(ivf_module, "POSTINGS_PER_STEP", step)
    rng = np.random.default_rng(5)
    codebook = rng.standard_normal((32, 128)).astype(np.float32)
    n, per = 400, 30
    x = (codebook[rng.integers(0, 32, n * per)] + rng.standard_normal((n * per, 128))).astype(np.float32)
    b = InvertedFileBuilder(codebook, ma=1)
    b.add(x, np.arange(0, n * per + 1, per))
    ivf = b.finish()
    qz = Quantizer(codebook)
    qx = x[:per] + 0.3 * rng.standard_normal((per, 128)).astype(np.float32)
    got = query_scores(ivf, qz, qx, ma=3, alpha=alpha)
    _, qw, qc = aggregate(qx, qz.assign(qx, 3), np.zeros(per, np.int64), codebook, binary=True)
    pos = np.concatenate([np.arange(ivf.word_offsets[w], ivf.word_offsets[w + 1]) for w in qw])
    owner = np.repeat(np.arange(len(qw)), np.diff(ivf.word_offsets)[qw])
    s = word_similarity(ivf.entry_codes[pos], qc[owner], 128, alpha)
    want = np.bincount(ivf.entry_images[pos], weights=s, minlength=n)
    want = want / np.sqrt(np.maximum(ivf.image_words, 1) * len(qw))
    assert pos.shape[0] > 3 * step or step > pos.shape[0]  # several blocks, or one
    np.testing.assert_array_equal(got, want)
