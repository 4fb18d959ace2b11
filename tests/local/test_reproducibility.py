"""What keeps the deep-locals + ASMK* figures reproducible across the restructuring (issue 12).

The restructuring moved the deep locals' PCA-whitening onto ``whiten.core.pca_whitening``, which fixes the sign
of each eigenvector (the earlier code kept whatever LAPACK returned). These tests pin the two facts that make
that change harmless for ASMK* (see docs/local.md, "Re-run of the pairs-dev figures"): the whitening is still
the documented one up to the sign of each component, and ASMK* does not see such signs.
"""

from __future__ import annotations

import numpy as np

from retrievalkit.extract.local_desc import PCA_RIDGE, PCA_SAMPLE, learn_local_pca
from retrievalkit.search.asmk import InvertedFileBuilder, Quantizer, query_scores, train_codebook
from retrievalkit.whiten.core import apply_whitening


def _reference_whitening(x: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The deep locals' PCA-whitening as written before the restructuring: eigenvectors of the sample
    covariance, scaled by (eigenvalue + 1e-6 · largest)^-1/2, as a (C, d) matrix applied on the right."""
    x = np.asarray(x, np.float64)
    mean = x.mean(0)
    cov = (x - mean).T @ (x - mean) / (x.shape[0] - 1)
    w, v = np.linalg.eigh(cov)
    order = np.argsort(w)[::-1][:dim]
    w, v = np.maximum(w[order], 0), v[:, order]
    return mean, v / np.sqrt(w + PCA_RIDGE * w.max())


def test_deep_locals_pca_is_the_documented_whitening_up_to_component_signs():
    rng = np.random.default_rng(0)
    channels, dim = 24, 8
    mix = rng.standard_normal((channels, channels))
    images = [np.maximum(rng.standard_normal((40, channels)) @ mix, 0) for _ in range(6)]  # ReLU-like maps

    def describe(i):
        return np.zeros((40, 4), np.float32), images[i].astype(np.float32), (64, 64)

    assert sum(len(d) for d in images) <= PCA_SAMPLE  # every descriptor is used: no sampling in this test
    mean, proj = learn_local_pca(describe, range(len(images)), channels, dim, "test")
    assert proj.shape == (dim, channels)
    x = np.concatenate(images)
    got = apply_whitening(x, mean, proj)
    ref_mean, ref_proj = _reference_whitening(x, dim)
    ref = (x - ref_mean) @ ref_proj
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    signs = np.sign((got * ref).sum(0))
    assert np.all(np.abs(signs) == 1)
    np.testing.assert_allclose(got, ref * signs, atol=1e-5)


def test_asmk_scores_do_not_depend_on_descriptor_dimension_signs():
    rng = np.random.default_rng(1)
    dim, words = 16, 12
    centres = rng.standard_normal((words, dim))
    db = (centres[rng.integers(0, words, 600)] + 0.3 * rng.standard_normal((600, dim))).astype(np.float32)
    db /= np.linalg.norm(db, axis=1, keepdims=True)
    offsets = np.arange(0, 601, 30)  # 20 database images of 30 descriptors
    query = db[35:55] + 0.05 * rng.standard_normal((20, dim)).astype(np.float32)
    flip = np.where(rng.random(dim) < 0.5, -1, 1).astype(np.float32)
    flip[0] = -1  # at least one dimension flipped

    def scores(sign):
        codebook = train_codebook(db * sign, words, seed=0)
        b = InvertedFileBuilder(codebook)
        b.add(db * sign, offsets)
        ivf = b.finish()
        return codebook, query_scores(ivf, Quantizer(codebook), query * sign, ma=3)

    cb, s = scores(np.ones(dim, np.float32))
    cb_f, s_f = scores(flip)
    np.testing.assert_allclose(cb_f, cb * flip, atol=1e-6)  # the same codebook, mirrored
    assert s.max() > 0 and np.count_nonzero(s) >= 2
    np.testing.assert_allclose(s_f, s, rtol=1e-9, atol=1e-12)
