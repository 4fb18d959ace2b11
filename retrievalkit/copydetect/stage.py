"""The copy-detection stage: descriptors → PCA-whitening → normalised search → local verification → submission.

Core functions take arrays (:func:`match_queries`, :func:`descriptor_track`); :func:`copy_detect` takes paths,
writes one output (matching CSV and/or descriptor-track HDF5) and returns its path.
"""
# ruff: noqa: E741  (faiss naming from STYLE.md: D scores, I ids)

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from retrievalkit.configs.checks import stage_config
from retrievalkit.configs.copydetect import CopyDetectConfig
from retrievalkit.copydetect.crops import VIEWS, combine_mean, describe_views, parse_views
from retrievalkit.copydetect.normalize import augment_for_l2, background_similarity, normalized_search
from retrievalkit.copydetect.pca import PCAWhitening, fit_pca_whitening
from retrievalkit.copydetect.submission import (
    MAX_DESCRIPTOR_DIM,
    Matches,
    image_ids,
    select_matches,
    write_descriptors,
    write_matches_csv,
)
from retrievalkit.copydetect.verify import verify_candidates
from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.images.discover import find_images
from retrievalkit.io.output import config_paths, writes_output
from retrievalkit.neighbours import Neighbours

#: progress(n): advance the current phase by n; on_phase(description, total): a new phase begins
Progress = Callable[[int], None] | None
OnPhase = Callable[[str, int], None] | None


def _phase(on_phase: OnPhase, description: str, total: int) -> None:
    if on_phase:
        on_phase(description, total)


@dataclass
class Side:
    """One side of the problem (queries, references or training): ids and descriptor rows.

    ``vectors`` (M, D) rows belong to image ``owner[m]``; ``paths`` are the image files (None when the side came
    from a features file whose images cannot be found); ``full_view``: which of an image's rows is the whole
    image (None: unknown, e.g. several rows from a features file).
    """

    ids: list[str]
    vectors: np.ndarray
    owner: np.ndarray
    paths: list[Path] | None
    source: str
    full_view: int | None = 0

    def one_per_image(self) -> np.ndarray:
        """(N, D): the whole-image row of each image when known, else the normalised mean of its rows."""
        n = len(self.ids)
        if self.vectors.shape[0] == n:
            return self.vectors
        if self.full_view is not None:
            counts = np.bincount(self.owner, minlength=n)
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            if np.all(counts > self.full_view) and np.all(np.diff(self.owner) >= 0):
                return self.vectors[starts + self.full_view]
        return combine_mean(self.vectors, self.owner, n)


# ---------------------------------------------------------------------------------------------------- core


def aggregate_views(owner: np.ndarray, D: np.ndarray, I: np.ndarray, n: int, k: int) -> Neighbours:
    """Per-row results (M, K) of view rows owned by ``owner`` → per-image best ``k`` references (max over views).

    ``D``, ``I``: the per-row (M, K) scores and reference ids (``Neighbours`` order).
    Returns ``Neighbours(scores (n, k) float64 with -inf pads, ids (n, k) int64 with -1 pads)``, best first.
    """
    rows = np.repeat(np.asarray(owner, np.int64), I.shape[1])
    refs, scores = I.ravel().astype(np.int64), D.ravel().astype(np.float64)
    ok = refs >= 0
    rows, refs, scores = rows[ok], refs[ok], scores[ok]
    order = np.lexsort((-scores, refs, rows))  # by image, reference, best score first
    rows, refs, scores = rows[order], refs[order], scores[order]
    first = np.ones(rows.size, bool)
    first[1:] = (rows[1:] != rows[:-1]) | (refs[1:] != refs[:-1])
    rows, refs, scores = rows[first], refs[first], scores[first]
    order = np.lexsort((refs, -scores, rows))
    rows, refs, scores = rows[order], refs[order], scores[order]
    I_out = np.full((n, k), -1, np.int64)
    D_out = np.full((n, k), -np.inf, np.float64)
    starts = np.searchsorted(rows, np.arange(n))
    stops = np.searchsorted(rows, np.arange(n), side="right")
    for i in range(n):
        m = min(k, stops[i] - starts[i])
        I_out[i, :m] = refs[starts[i]:starts[i] + m]
        D_out[i, :m] = scores[starts[i]:starts[i] + m]
    return Neighbours(D_out, I_out)


def learn_whitening(xt: np.ndarray | None, cfg: CopyDetectConfig, max_dim: int | None = None) -> PCAWhitening | None:
    cfg = cfg.resolved(xt is not None)
    if not cfg.dim:
        return None
    dim = cfg.dim if max_dim is None else min(cfg.dim, max_dim)
    return fit_pca_whitening(xt, dim, cfg.shrinkage)


class Candidates(NamedTuple):
    """Matching-track candidates: ``scores`` (Q, K) float64 (verified pairs re-scored), ``ids`` (Q, K) reference
    rows (-1 pads), as :class:`~retrievalkit.neighbours.Neighbours`; ``info``: counts for the run's config."""

    scores: np.ndarray
    ids: np.ndarray
    info: dict


def match_queries(q: Side, r: Side, t: Side | None, cfg: CopyDetectConfig, progress: Progress = None,
                  on_phase: OnPhase = None, searcher=None) -> Candidates:
    """Matching-track candidates of every query image (:class:`Candidates`).

    ``progress(n)`` advances the current phase (``search``: query rows, ``verify``: queries), announced by
    ``on_phase(description, total)``. ``searcher``: a built index of the references
    (:class:`~retrievalkit.search.index_stages.IndexSearcher`) searched instead of the reference vectors; it holds
    the raw vectors, so PCA-whitening must be off (score normalisation is a per-query shift, applied after).
    """
    xq, xr = q.vectors, r.vectors
    xt = t.vectors if t is not None else None
    cfg = cfg.resolved(xt is not None)
    info: dict = {}
    w = learn_whitening(xt, cfg)
    if w is not None and searcher is not None:
        raise UsageError("--index holds the references' raw vectors and PCA-whitening changes them: give --dim 0 "
                         "with --index (or build the index from whitened features)")
    if w is not None:
        xq, xr, xt = w.apply(xq), w.apply(xr), w.apply(xt)
        info["pca_dim"] = w.dim
    nq = len(q.ids)
    if cfg.combine == "mean" and xq.shape[0] != nq:
        xq = combine_mean(xq, q.owner, nq)
        owner = np.arange(nq)
    else:
        owner = q.owner
    k = max(cfg.top_k, cfg.verify.top if cfg.verify else 0)
    beta = cfg.norm_beta if xt is not None else 0.0
    _phase(on_phase, "search", xq.shape[0])
    if searcher is None:
        Dr, Ir = normalized_search(xq, xr, k, xt, beta, cfg.norm_k, cfg.norm_stat, block=cfg.block_size,
                                   device=cfg.device, progress=progress)
    else:  # s' = s - beta * b(q): a shift per query row, so the index's top-k stay the top-k
        Dr, Ir = searcher.search(xq, k, block_size=cfg.block_size, progress=progress)
        if xt is not None and beta != 0:
            bias = background_similarity(xq, xt, cfg.norm_k, cfg.norm_stat, block=cfg.block_size,
                                         device=cfg.device)
            Dr = Dr - np.float32(beta) * bias.astype(np.float32)[:, None]
        info["index"] = searcher.describe()
    D, I = aggregate_views(owner, Dr, Ir, nq, min(k, xr.shape[0]))
    if cfg.verify is not None and cfg.verify.top > 0:
        if q.paths is None or r.paths is None:
            raise UsageError("local verification needs the images: give query and reference folders (or features "
                             "files whose image_root still exists), or --no-verify")
        _phase(on_phase, "verify", nq)
        D, _, ok = verify_candidates(q.paths, r.paths, D, I, cfg.verify, progress=progress)
        info["verified_pairs"] = int(ok.sum())
    return Candidates(D, I, info)


def descriptor_track(q: Side, r: Side, t: Side | None, cfg: CopyDetectConfig) -> tuple[np.ndarray, np.ndarray]:
    """One ≤ 256-d descriptor per query and reference, normalisation folded into an extra query dimension.

    The challenge allows one vector per image: a query described by several views contributes its whole-image
    view (averaging crops dilutes it), or the mean of its rows when no whole-image row is known.
    """
    xq = q.one_per_image()
    if r.vectors.shape[0] != len(r.ids):
        raise BadInputError(f"{r.source}: several vectors per reference; the descriptor track needs one per image")
    xr = r.vectors
    xt = t.vectors if t is not None else None
    cfg = cfg.resolved(xt is not None)
    normalise = xt is not None and cfg.norm_beta > 0
    w = learn_whitening(xt, cfg, MAX_DESCRIPTOR_DIM - (1 if normalise else 0))
    if w is not None:
        xq, xr, xt = w.apply(xq), w.apply(xr), w.apply(xt)
    if normalise:
        bias = background_similarity(xq, xt, cfg.norm_k, cfg.norm_stat, block=cfg.block_size, device=cfg.device)
        xq, xr = augment_for_l2(xq, xr, bias, cfg.norm_beta)
    if xq.shape[1] > MAX_DESCRIPTOR_DIM:
        raise UsageError(f"descriptor track: {xq.shape[1]}-d descriptors but at most {MAX_DESCRIPTOR_DIM} are "
                         "allowed; keep PCA-whitening on (--dim 256, needs --training)")
    return xq, xr


# ---------------------------------------------------------------------------------------------------- files


class _NetHolder:
    def __init__(self, cfg: CopyDetectConfig):
        self.cfg = cfg
        self.net = None

    def get(self):
        if self.net is None:
            from retrievalkit.extract.global_desc import build_network

            self.net = build_network(self.cfg.model, weights=self.cfg.weights, device=self.cfg.device)
            self.net.eval()
        return self.net


def drop_unreadable(folder: Path, names: list[str], ids: list[str], owner: np.ndarray,
                    failed: list[tuple[str, str]]) -> tuple[list[str], list[str], np.ndarray]:
    """Leave out images that could not be read, one warning each (they get no descriptor and no match)."""
    import warnings

    from retrievalkit.errors import RkitWarning

    if len(failed) == len(names):
        raise BadInputError(f"{folder}: none of the {len(names)} images could be read (first: {failed[0][0]}: "
                            f"{failed[0][1]})")
    bad = {n for n, _ in failed}
    for n, why in failed:
        warnings.warn(f"{folder / n}: {why}; left out", RkitWarning, stacklevel=3)
    keep = [i for i, n in enumerate(names) if n not in bad]
    new_index = np.full(len(names), -1, np.int64)
    new_index[keep] = np.arange(len(keep))
    return [names[i] for i in keep], [ids[i] for i in keep], new_index[owner]


def load_side(path: str | os.PathLike, what: str, cfg: CopyDetectConfig, nets: _NetHolder, views: str = "full",
              progress: Progress = None, on_phase: OnPhase = None) -> Side:
    """A folder of images (described here) or an ``rkit extract`` features file."""
    path = Path(path)
    if path.is_dir():
        names = find_images(path)
        ids = image_ids(names, path)
        net = nets.get()
        _phase(on_phase, f"describe {what}", len(names))
        x, owner, failed = describe_views(net, path, names, cfg.size, parse_views(views), cfg.scales,
                                          cfg.workers, progress)
        if failed:
            names, ids, owner = drop_unreadable(path, names, ids, owner, failed)
        boxes = parse_views(views)
        full = boxes.index(VIEWS["full"][0]) if VIEWS["full"][0] in boxes else None
        return Side(ids, x, owner, [path / n for n in names], str(path), full)
    if path.is_file():
        from retrievalkit.io.features import read_features

        f = read_features(path)
        if not f.names:
            raise BadInputError(f"{path}: the features file holds no images")
        ids = image_ids(f.names, path)
        owner = f.image_index if f.image_index is not None else np.arange(len(f.names))
        root = f.config.get("image_root")
        paths = [Path(root) / n for n in f.names] if root and Path(root).is_dir() else None
        return Side(ids, f.vectors, owner, paths, str(path), None if f.image_index is not None else 0)
    raise BadInputError(f"{path}: no such folder or features file; give a folder of {what} images or a feats.h5")


#: files named inside the config (model or weights file): inputs an output must not replace
_config_files = config_paths("model", "weights")


@writes_output("output", "descriptors", inputs=("queries", "references", "training", "index", _config_files))
def copy_detect(queries: str | os.PathLike, references: str | os.PathLike, output: str | os.PathLike | None,
                config: CopyDetectConfig | None = None, *, training: str | os.PathLike | None = None,
                descriptors: str | os.PathLike | None = None, index: Sequence[str | os.PathLike] | None = None,
                progress: Progress = None, on_phase: OnPhase = None,
                log: Callable[[str], None] | None = None) -> Path:
    """Run copy detection and write the matching CSV (``output``) and/or the descriptor-track file
    (``descriptors``); ``output`` None: the descriptor track only.

    ``config``: :class:`CopyDetectConfig` (None: the defaults), resolved with or without ``training`` images
    (:meth:`CopyDetectConfig.resolved`).
    ``progress(n)`` advances the current phase by n (images described, query rows searched, queries verified);
    ``on_phase(description, total)`` announces each phase (``describe query``, ..., ``search``, ``verify``).

    ``index``: a built faiss index of the references features file (``rkit index build``; several files: the
    parts of one), searched for the matching track instead of the reference vectors (PCA-whitening off).

    Returns:
        the matches CSV path, or the descriptors path when ``output`` is None.
    """
    cfg = stage_config(config, CopyDetectConfig).resolved(training is not None)
    cfg.check()
    if output is None and descriptors is None:
        raise UsageError("nothing to write: give -o matches.csv (matching track) and/or --descriptors desc.h5")
    if index:
        if output is None:
            raise UsageError("--index serves the matching track's search (-o matches.csv); the descriptor track "
                             "does not search")
        if not Path(references).is_file():
            raise UsageError(f"--index: give the references as the features file the index was built from "
                             f"(--database refs.h5), not the folder {references}")
        if cfg.dim:
            raise UsageError("--index holds the references' raw vectors and PCA-whitening changes them: give "
                             "--dim 0 with --index (or build the index from whitened features)")
    nets = _NetHolder(cfg)
    q = load_side(queries, "query", cfg, nets, cfg.query_views, progress, on_phase)
    r = load_side(references, "reference", cfg, nets, "full", progress, on_phase)
    t = load_side(training, "training", cfg, nets, "full", progress, on_phase) if training is not None else None
    for s in (r, t):
        if s is not None and s.vectors.shape[1] != q.vectors.shape[1]:
            raise BadInputError(f"{s.source}: {s.vectors.shape[1]}-d descriptors but the queries "
                                f"({q.source}) are {q.vectors.shape[1]}-d; describe all sides with the same model")
    out_csv = out_h5 = None
    if output is not None:
        searcher = None
        if index:
            from retrievalkit.search.index_stages import IndexSearcher

            k = max(cfg.top_k, cfg.verify.top if cfg.verify else 0)
            searcher = IndexSearcher(index, references, k, device=cfg.device, log=log)
        D, I, _ = match_queries(q, r, t, cfg, progress, on_phase, searcher=searcher)
        m: Matches = select_matches(q.ids, r.ids, D, I, cfg.top_k, cfg.max_rows)
        out_csv = write_matches_csv(output, m)
    if descriptors is not None:
        xq, xr = descriptor_track(q, r, t, cfg)
        out_h5 = write_descriptors(descriptors, q.ids, xq, r.ids, xr, config=cfg.to_dict())
    return out_csv if out_csv is not None else out_h5


@writes_output("output", inputs=("references", _config_files))
def extract_reference_shard(references: str | os.PathLike, output: str | os.PathLike,
                            config: CopyDetectConfig | None = None, *, shard: tuple[int, int] | None = None,
                            progress: Callable[[int], None] | None = None,
                            on_failure: Callable[[str, str], None] | None = None) -> Path:
    """Describe shard I of N of a reference folder (``rkit extract``'s shard logic; None: all of it) with the
    config's descriptor settings; join the shards with ``rkit merge``."""
    cfg = stage_config(config, CopyDetectConfig)
    from retrievalkit.configs.extract import GlobalExtractConfig
    from retrievalkit.extract.global_desc import extract_global

    settings = GlobalExtractConfig(model=cfg.model, weights=cfg.weights, size=cfg.size, scales=cfg.scales,
                                   workers=cfg.workers)
    return extract_global(references, output, settings, device=cfg.device, shard=shard, progress=progress,
                          on_failure=on_failure)


__all__: Sequence[str] = ["Candidates", "CopyDetectConfig", "Side", "aggregate_views", "copy_detect",
                          "descriptor_track", "extract_reference_shard", "load_side", "match_queries"]
