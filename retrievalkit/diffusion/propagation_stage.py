"""Stage function of ``rkit propagate``: features + a few labels (+ kNN graph) -> predictions CSV (+ tuples)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from retrievalkit.configs.checks import stage_config
from retrievalkit.diffusion.propagation import (
    Propagated,
    PropagationConfig,
    class_names,
    class_weights,
    propagate_labels,
)
from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.io import read_features, read_knn
from retrievalkit.io.h5file import check_same_names
from retrievalkit.io.labels import Predictions, match_names, read_labels, write_predictions
from retrievalkit.io.output import writes_output
from retrievalkit.io.tuples import Tuples, write_tuples
from retrievalkit.neighbours import Neighbours


def pseudo_label_tuples(x: np.ndarray, res: Propagated, n_classes: int) -> tuple[np.ndarray, ...]:
    """Training tuples from (pseudo-)labels: every image with a positive weight is a query, its positive the
    most similar other image of its class (weight > 0); the tuple's weight is the query's certainty times its
    class's balancing weight (``1 / class size``), scaled to mean 1 over the tuples.

    Returns (cluster (N,), qidx (T,), pidx (T,), weight (T,)); cluster = the class, -1 for weight 0.
    """
    usable = res.weight > 0
    cluster = np.where(usable, res.label, -1).astype(np.int64)
    zeta = class_weights(res.label[usable], n_classes)
    qidx, pidx, wts = [], [], []
    for c in range(n_classes):
        members = np.flatnonzero(cluster == c)
        if members.size < 2:
            continue
        sims = x[members] @ x[members].T
        np.fill_diagonal(sims, -np.inf)
        qidx.append(members)
        pidx.append(members[sims.argmax(axis=1)])
        wts.append(res.weight[members] * zeta[c])
    if not qidx:
        raise BadInputError("no class has two images with a usable (pseudo-)label: no training tuple can be formed")
    w = np.concatenate(wts)
    return cluster, np.concatenate(qidx), np.concatenate(pidx), (w / w.mean()).astype(np.float32)


@writes_output("output", "tuples", inputs=("features", "labels", "graph"))
def propagate(features: str | os.PathLike, labels: str | os.PathLike, output: str | os.PathLike,
              config: PropagationConfig | None = None, *, graph: str | os.PathLike | None = None,
              tuples: str | os.PathLike | None = None, device: str = "cpu",
              progress: Callable[[int], None] | None = None) -> Path:
    """Label propagation over the kNN graph of ``features``; writes the predictions CSV (and tuples).

    Args:
        features: features file of the whole collection (labelled and unlabelled images; one vector each).
        labels: CSV ``name,label`` for the labelled images.
        output: predictions CSV ``name,label,confidence,weight``, one row per image in the features' order.
        graph: kNN graph of ``features`` (``rkit index knn``); None: built here.
        tuples: also write pseudo-labelled training tuples (``rkit/tuples`` with a ``weight`` dataset).
        progress: called once, with the number of images, when the labels are propagated.
    Returns:
        The predictions path.
    """
    cfg = stage_config(config, PropagationConfig)
    cfg.check()
    feats = read_features(features)
    if feats.image_index is not None:
        raise UsageError(f"{features}: holds regions (several vectors per image); label propagation needs one "
                         "vector per image (extract without --regions)")
    knn = None
    if graph is not None:
        g = read_knn(graph)
        check_same_names(feats.names, g.names, features, graph, "graph names")
        knn = Neighbours(g.scores, g.indices)
    rows = match_names(read_labels(labels), feats.names, str(labels))
    classes = class_names(rows.values())
    index = {c: j for j, c in enumerate(classes)}
    seeds = np.full(len(feats.names), -1, dtype=np.int64)
    for i, c in rows.items():
        seeds[i] = index[c]
    res = propagate_labels(feats.vectors, seeds, len(classes), cfg, knn=knn, device=device)
    pred = Predictions(list(feats.names), [classes[j] for j in res.label], res.confidence, res.weight)
    if progress:
        progress(len(feats.names))
    if tuples is not None:
        cluster, qidx, pidx, w = pseudo_label_tuples(np.asarray(feats.vectors, np.float32), res, len(classes))
        conf = {"source": "rkit propagate", "classes": classes, **res.config.to_dict()}
        write_tuples(tuples, Tuples(list(feats.names), cluster, qidx, pidx, None,
                                    str(feats.config.get("image_root", "")), conf, weight=w),
                     inputs={"features": str(features), "labels": str(labels)})
    return write_predictions(output, pred)


__all__ = ["propagate", "pseudo_label_tuples", "PropagationConfig"]
