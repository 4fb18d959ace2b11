"""Stage functions of ``rkit whiten``: learn a whitening from a features file, apply one to a features file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from retrievalkit.configs.checks import stage_config
from retrievalkit.configs.whiten import ApplyWhiteningConfig, WhitenConfig
from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.images.discover import strip_extension
from retrievalkit.io.features import Features, read_features, write_features
from retrievalkit.io.output import writes_output
from retrievalkit.io.tuples import Tuples, read_tuples
from retrievalkit.whiten.core import apply_whitening, learned_whitening, pca_whitening
from retrievalkit.whiten.whitening_file import Whitening, read_whitening, write_whitening

METHODS = ("pca", "learned")


def _single_vector(feats: Features) -> None:
    if feats.image_index is not None:
        raise BadInputError(f"{feats.path}: holds several vectors per image (regions); whitening needs one "
                            "global vector per image (extract without --regions)")


def match_names(feat_names: list[str], feat_root: str | None, names: list[str], root: str | None) -> np.ndarray:
    """Row of the features file for each of ``names`` (-1 when absent).

    Names are matched, in this order, by absolute path (when both image roots are known), by name, and by
    name without its image extension (ground-truth style names).
    """
    out = np.full(len(names), -1, np.int64)
    by_abs: dict[str, int] = {}
    if feat_root and root:
        by_abs = {os.path.normpath(os.path.join(feat_root, n)): i for i, n in enumerate(feat_names)}
    by_name = {n: i for i, n in enumerate(feat_names)}
    by_stem = {strip_extension(n): i for i, n in enumerate(feat_names)}
    for j, n in enumerate(names):
        i = by_abs.get(os.path.normpath(os.path.join(root, n))) if by_abs else None
        if i is None:
            i = by_name.get(n)
        if i is None:
            i = by_stem.get(strip_extension(n))
        if i is not None:
            out[j] = i
    return out


def _pairs_in_features(feats: Features, tup: Tuples) -> tuple[np.ndarray, np.ndarray]:
    rows = match_names(feats.names, feats.config.get("image_root"), tup.names, tup.image_root)
    q, p = rows[tup.qidx], rows[tup.pidx]
    missing = sorted({tup.names[i] for i in np.concatenate([tup.qidx[q < 0], tup.pidx[p < 0]])})
    if missing:
        raise BadInputError(
            f"{feats.path}: {len(missing)} image(s) of the pairs in {tup.path} have no vector (e.g. {missing[0]!r}, "
            f"image root {tup.image_root!r}); extract features of the tuples' images (rkit extract "
            f"{tup.image_root or 'IMAGE_ROOT'} ...)")
    return q, p


def _enough_vectors(feats: Features, dim: int | None, shrinkage: float, power: float) -> None:
    """N vectors span at most N - 1 centred directions: whitening more dimensions than that divides by
    eigenvalues that are zero (noise blown up to unit variance). Refused unless shrinkage regularises them."""
    n, d = feats.vectors.shape
    out = dim or d
    if n < 2:
        raise BadInputError(f"{feats.path}: {n} vector(s); learning a whitening needs at least 2 (more than the "
                            "dimension for full whitening)")
    if shrinkage == 0 and power > 0 and out > n - 1:
        raise BadInputError(f"{feats.path}: {n} vectors span at most {n - 1} dimensions, fewer than the {out} to "
                            f"whiten; pass --dim {n - 1} or lower, or --shrinkage (e.g. 0.1), or learn from more "
                            "images")


@writes_output("output", inputs=("features", "tuples"))
def learn_whitening(features: str | os.PathLike, output: str | os.PathLike, config: WhitenConfig | None = None, *,
                    tuples: str | os.PathLike | None = None, progress: Callable[[int], None] | None = None) -> Path:
    """Learn a PCA (``method='pca'``) or learned (``'learned'``, needs ``tuples``) whitening; write ``output``.

    ``progress(n)`` is called once, with the number of vectors, when the whitening is learned."""
    config = stage_config(config, WhitenConfig)
    method, dim, shrinkage, power = config.method.lower(), config.dim, config.shrinkage, config.power
    if method not in METHODS:
        raise UsageError(f"--method {method!r}: expected one of {', '.join(METHODS)}")
    feats = read_features(features)
    _single_vector(feats)
    settings = {"method": method, "dim_in": feats.dim, "shrinkage": shrinkage, "features": str(features),
                "model": feats.config.get("model"), "size": feats.config.get("size")}
    inputs = {"features": str(features)}
    if method == "pca":
        if tuples is not None:
            raise UsageError("--tuples is only used by --method learned")
        _enough_vectors(feats, dim, shrinkage, power)
        m, P = pca_whitening(feats.vectors, dim, shrinkage=shrinkage, power=power)
        settings.update(power=power, vectors=len(feats.names))
    else:
        if tuples is None:
            raise UsageError("--method learned needs --tuples TUPLES.h5 (its query/positive pairs)")
        tup = read_tuples(tuples)
        q, p = _pairs_in_features(feats, tup)
        m, P = learned_whitening(feats.vectors, q, p, dim, shrinkage=shrinkage)
        settings.update(tuples=str(tuples), pairs=int(len(q)))
        inputs["tuples"] = str(tuples)
    settings["dim"] = int(P.shape[0])
    if progress:
        progress(len(feats.names))
    return write_whitening(output, Whitening(m, P, method, settings), inputs)


@writes_output("output", inputs=("features", "whitening"))
def apply_whitening_file(features: str | os.PathLike, whitening: str | os.PathLike, output: str | os.PathLike,
                         config: ApplyWhiteningConfig | None = None, *,
                         progress: Callable[[int], None] | None = None) -> Path:
    """Whiten (and re-L2-normalise) every vector of ``features``; keep the first ``config.dim`` rows of P when
    given. ``progress(n)`` is called once, with the number of vectors, when they are whitened."""
    dim = stage_config(config, ApplyWhiteningConfig).dim
    feats = read_features(features)
    w = read_whitening(whitening)
    P = w.projection
    if dim:
        if dim > P.shape[0]:
            raise UsageError(f"--dim {dim}: the whitening in {whitening} has only {P.shape[0]} output dimensions")
        P = P[:dim]
    if feats.dim != w.dim_in:
        raise BadInputError(f"{features}: {feats.dim}-d vectors, but {whitening} whitens {w.dim_in}-d vectors; "
                            "learn the whitening on features of the same model")
    vectors = apply_whitening(feats.vectors, w.mean, P)
    if progress:
        progress(len(vectors))
    config = {**feats.config, "whitening": {"file": str(whitening), "method": w.method, "dim": int(P.shape[0])}}
    out = Features(feats.names, vectors, config, feats.failed, feats.failed_reason, feats.image_index)
    return write_features(output, out, inputs={"features": str(features), "whitening": str(whitening)})
