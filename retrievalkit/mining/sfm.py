"""``sfm-mine``: training tuples from Structure-from-Motion models of unlabelled photo collections.

Pipeline (Radenović, Tolias, Chum, "CNN image retrieval learns from BoW", ECCV 2016):

1. Collections: each sub-folder of IMAGES is a scene; images lying directly in IMAGES are split into
   clusters by their global descriptors (kNN graph + connected components, :mod:`.collections`).
2. Each collection is reconstructed with pycolmap (:mod:`.colmap`); models are kept in ``models_dir`` and
   reused by the next run. A collection that does not reconstruct is reported and skipped.
3. Every 3D model is a cluster: ``cluster[i]`` is the model id of image i. Queries are the registered
   images; positives share enough 3D points at a bounded scale change (:mod:`.positives`). Images of a
   scene that did not register take the id of the scene's largest model (so they are never negatives of
   that scene); the images of a scene without any model share one id of their own (negatives only);
   -1 marks loose images that fell in no cluster (never used).
4. Optional fixed negatives (``nidx``): random images of other scenes.

The tuples file's (qidx, pidx) pairs are also the training pairs of learned whitening.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrievalkit.configs.checks import stage_config
from retrievalkit.configs.mining import SfmMineConfig
from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.io.output import writes_output
from retrievalkit.io.tuples import Tuples, write_tuples
from retrievalkit.mining.collections import Collection, cluster_by_descriptors, discover_collections
from retrievalkit.mining.colmap import SfmOptions, load_status, read_model, reconstruct_isolated
from retrievalkit.mining.positives import STRATEGIES, mine_model_pairs, sample_negatives


@dataclass
class SceneReport:
    """What happened to one collection (one row of the summary table)."""

    scene: str
    images: int
    registered: int = 0
    models: int = 0
    tuples: int = 0
    state: str = "done"  # done | failed | unclustered
    reason: str = ""
    seconds: float = 0.0
    reused: bool = False


def default_models_dir(output: str | os.PathLike) -> Path:
    output = Path(output)
    return output.with_name(output.stem + "-models")


def _descriptors_for(images: Path, names: list[str], features: str | os.PathLike | None, work: Path,
                     model: str, size: int, device: str) -> np.ndarray:
    """(len(names), D) global descriptors: looked up in ``features`` or extracted into ``work``."""
    from retrievalkit.io.features import read_features

    if features is None:
        from retrievalkit.extract.global_desc import extract_global

        work.mkdir(parents=True, exist_ok=True)
        out = work / f"global-{model}-{size}.h5"
        have = read_features(out) if out.exists() else None
        if have is None or not set(names) <= set(have.names):
            with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=work, delete=False) as fh:
                fh.write("\n".join(names) + "\n")
                lst = fh.name
            try:
                from retrievalkit.configs.extract import GlobalExtractConfig

                extract_global(images, out, GlobalExtractConfig(model=model, size=size, workers=0), device=device,
                               list_file=lst)
            finally:
                os.unlink(lst)
        features = out
    feats = read_features(features)
    if feats.image_index is not None:
        raise BadInputError(f"{features}: holds several vectors per image; give one global vector per image")
    row = {n: i for i, n in enumerate(feats.names)}
    missing = [n for n in names if n not in row]
    if missing:
        raise BadInputError(f"{features}: no descriptor for {len(missing)} images (first: {missing[0]}); "
                            f"extract them from {images} with `rkit extract {images} -o FEATS.h5`")
    return feats.vectors[[row[n] for n in names]]


def sfm_options(config: SfmMineConfig, threads: int | None = None) -> SfmOptions:
    """The reconstruction settings of a :class:`SfmMineConfig` (``threads`` None: ``SfmOptions``' default)."""
    return SfmOptions(max_image_size=config.sift_size, max_features=config.max_features, matcher=config.matcher,
                      overlap=config.overlap, min_model_size=config.min_model_size, relaxed_init=config.relaxed_init,
                      mapper_trials=config.mapper_trials, threads=threads or SfmOptions.threads, seed=config.seed,
                      timeout=config.timeout).check()


@writes_output("output", inputs=("images", "features", "models_dir"))
def sfm_mine(
    images: str | os.PathLike,
    output: str | os.PathLike,
    config: SfmMineConfig | None = None,
    *,
    features: str | os.PathLike | None = None,
    models_dir: str | os.PathLike | None = None,
    threads: int | None = None,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
    on_scene: Callable[[SceneReport], None] | None = None,
) -> Path:
    """Reconstruct every collection under ``images`` and write the mined tuples to ``output``.

    Args:
        images: folder of scene sub-folders, or a flat folder of photos (clustered first), or both.
        config: :class:`SfmMineConfig` (None: the defaults). ``positive``: ``random`` | ``most-shared`` |
            ``closest`` (see :mod:`.positives`); ``per_query``: positives per query; ``min_overlap``,
            ``max_scale``, ``min_shared``: positive constraints; ``negatives``: fixed random negatives per tuple
            from other scenes (0: none; the trainer mines its own); ``val_fraction``: fraction of queries whose
            pairs go to ``val_qidx``/``val_pidx`` instead; ``graph_k``, ``cluster_threshold``: kNN graph used to
            split a flat folder; ``model``, ``size``: global descriptors extracted when ``features`` is None;
            the reconstruction settings (:func:`sfm_options`); ``retry_failed``: reconstruct collections that
            failed before.
        features: global descriptors of the images (needed to cluster a flat folder and by ``closest``);
            when absent they are extracted with ``config.model`` at ``config.size`` into ``models_dir``.
        models_dir: where SfM models are kept (default: ``<output stem>-models`` next to the output);
            finished collections are reused, failed ones too unless ``retry_failed``.
        threads: CPU threads COLMAP may use (None: ``SfmOptions``' default).
        progress(n): advances by the collections done (the unclustered images count as one).
        on_scene(report): the :class:`SceneReport` of each collection as it is done.
    Returns:
        the path of the tuples file.
    """
    c = stage_config(config, SfmMineConfig)
    positive, per_query, min_overlap, max_scale = c.positive, c.per_query, c.min_overlap, c.max_scale
    min_shared, negatives, val_fraction, seed = c.min_shared, c.negatives, c.val_fraction, c.seed
    model, size, cluster_k, cluster_threshold = c.model, c.size, c.graph_k, c.cluster_threshold
    retry_failed = c.retry_failed
    images = Path(images)
    opts = sfm_options(c, threads)
    _check_args(positive, val_fraction, min_overlap, max_scale)
    models_dir = Path(models_dir) if models_dir is not None else default_models_dir(output)
    rng = np.random.default_rng(seed)

    def descriptors(names: list[str]) -> np.ndarray:
        return _descriptors_for(images, names, features, models_dir, model, size, device)

    collections, loose = discover_collections(images)
    unclustered = _cluster_loose(images, loose, collections, descriptors, cluster_k, cluster_threshold,
                                 opts.min_model_size) if loose else []
    names = sorted({n for c in collections for n in c.global_names()} | set(unclustered))
    mined = _Mined(names)
    desc = descriptors(names) if positive == "closest" else None
    reports = []
    for s, col in enumerate(collections):
        rep = _mine_collection(col, s, mined, models_dir / col.name, opts, retry_failed, rng,
                               (positive, per_query, min_overlap, max_scale, min_shared), desc)
        reports.append(rep)
        if on_scene:
            on_scene(rep)
        if progress:
            progress(1)
    if unclustered:
        rep = SceneReport("(unclustered)", len(unclustered), state="unclustered",
                          reason="in no descriptor cluster of at least --min-model-size images")
        reports.append(rep)
        if on_scene:
            on_scene(rep)
        if progress:
            progress(1)

    qidx = np.concatenate(mined.qs) if mined.qs else np.zeros(0, np.int64)
    pidx = np.concatenate(mined.ps) if mined.ps else np.zeros(0, np.int64)
    if qidx.size == 0:
        raise BadInputError(f"{images}: no collection gave a single training pair "
                            f"({sum(r.state == 'failed' for r in reports)} of {len(collections)} failed to "
                            f"reconstruct); see {models_dir}/*/colmap.log")
    qidx, pidx, val_q, val_p = _hold_out(qidx, pidx, val_fraction, rng)
    nidx = sample_negatives(qidx, mined.scene_of, negatives, rng) if negatives > 0 else None

    config = {
        "method": "sfm",
        "positive": positive, "per_query": per_query, "min_overlap": min_overlap, "max_scale": max_scale,
        "min_shared": min_shared, "negatives": negatives, "val_fraction": val_fraction, "seed": seed,
        "sfm": opts.key(), "models_dir": str(models_dir),
        "cluster_scene": mined.cluster_scene,
        "scenes": [{"scene": r.scene, "images": r.images, "registered": r.registered, "models": r.models,
                    "tuples": r.tuples, "state": r.state, "reason": r.reason} for r in reports],
    }
    if loose:
        config["flat_clustering"] = {"k": cluster_k, "threshold": cluster_threshold,
                                     "features": str(features) if features else f"{model}@{size}"}
    t = Tuples(names, mined.cluster, qidx, pidx, nidx, str(images.resolve()), config, val_q, val_p)
    return write_tuples(output, t, inputs={"images": str(images)})


def _check_args(positive: str, val_fraction: float, min_overlap: float, max_scale: float) -> None:
    if positive not in STRATEGIES:
        raise UsageError(f"--positive {positive!r}: expected one of {', '.join(STRATEGIES)}")
    if not 0.0 <= val_fraction < 1.0:
        raise UsageError(f"--val-fraction {val_fraction}: must be in [0, 1)")
    if not 0.0 <= min_overlap <= 1.0:
        raise UsageError(f"--min-overlap {min_overlap}: must be in [0, 1]")
    if max_scale < 1.0:
        raise UsageError(f"--max-scale {max_scale}: must be at least 1 (1 = same scale only)")


def _cluster_loose(images: Path, loose: list[str], collections: list[Collection],
                   descriptors: Callable[[list[str]], np.ndarray], k: int, threshold: float,
                   min_size: int) -> list[str]:
    """Split the loose images of a flat folder into descriptor clusters (appended to ``collections``);
    returns the images left in no cluster."""
    labels = cluster_by_descriptors(descriptors(loose), k=k, threshold=threshold, min_size=min_size)
    for c in range(int(labels.max()) + 1 if labels.size else 0):
        members = [n for n, lab in zip(loose, labels) if lab == c]
        collections.append(Collection(f"cluster-{c:03d}", images, members, ""))
    return [n for n, lab in zip(loose, labels) if lab < 0]


class _Mined:
    """What mining gathers over the collections: the cluster id and scene of every image, the pairs."""

    def __init__(self, names: list[str]):
        self.index = {n: i for i, n in enumerate(names)}
        self.cluster = np.full(len(names), -1, np.int64)
        self.scene_of = np.full(len(names), -1, np.int64)
        self.cluster_scene: list[str] = []
        self.qs: list[np.ndarray] = []
        self.ps: list[np.ndarray] = []

    def new_cluster(self, scene: str) -> int:
        self.cluster_scene.append(scene)
        return len(self.cluster_scene) - 1


def _mine_collection(col: Collection, s: int, mined: _Mined, work: Path, opts: SfmOptions, retry_failed: bool,
                     rng: np.random.Generator, pair_rule: tuple, desc: np.ndarray | None) -> SceneReport:
    """Reconstruct (or reuse) one collection and mine the pairs of each of its models into ``mined``.

    ``pair_rule``: (positive, per_query, min_overlap, max_scale, min_shared) of :func:`mine_model_pairs`.
    """
    gidx = np.array([mined.index[n] for n in col.global_names()], np.int64)
    mined.scene_of[gidx] = s
    rep = SceneReport(col.name, len(col.names))
    t0 = time.time()
    status = load_status(work, col.names, opts)
    if status is not None and status["state"] == "failed" and retry_failed:
        status = None
    if status is not None:
        rep.reused = True
    else:
        status = reconstruct_isolated(col.image_dir, col.names, work, opts)
    rep.seconds = float(status.get("seconds", time.time() - t0)) if not rep.reused else time.time() - t0
    if status["state"] != "done":
        rep.state, rep.reason = "failed", status.get("reason", "")
        mined.cluster[gidx] = mined.new_cluster(col.name)
        return rep
    first_id = len(mined.cluster_scene)
    seen = np.zeros(0, np.int64)
    cluster = mined.cluster
    for m in status["models"]:
        obs = read_model(work / m["dir"])
        midx = np.array([mined.index[f"{col.prefix}{n}"] for n in obs.names], np.int64)
        known = cluster[midx][cluster[midx] >= 0]
        if known.size:  # COLMAP models may overlap: images they share make them one cluster
            cid = int(known[0])
            cluster[np.isin(cluster, known)] = cid
        else:
            cid = mined.new_cluster(col.name)
            rep.models += 1
        cluster[midx] = cid
        q, p = mine_model_pairs(obs, *pair_rule, descriptors=None if desc is None else desc[midx], rng=rng)
        mined.qs.append(midx[q])
        mined.ps.append(midx[p])
        rep.registered += len(np.setdiff1d(midx, seen))
        seen = np.union1d(seen, midx)
        rep.tuples += len(q)
    left = gidx[cluster[gidx] < 0]
    cluster[left] = first_id
    return rep


def _hold_out(qidx: np.ndarray, pidx: np.ndarray, val_fraction: float, rng: np.random.Generator):
    """(train qidx, train pidx, val qidx or None, val pidx or None): a ``val_fraction`` of the queries held out."""
    if val_fraction <= 0:
        return qidx, pidx, None, None
    uq = np.unique(qidx)
    held = rng.choice(uq, size=max(1, int(round(val_fraction * uq.size))), replace=False)
    is_val = np.isin(qidx, held)
    return qidx[~is_val], pidx[~is_val], qidx[is_val], pidx[is_val]
