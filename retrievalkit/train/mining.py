"""Hard-negative mining from a random pool with the current network (cirtorch's ``create_epoch_tuples``)."""

from __future__ import annotations

import numpy as np

from retrievalkit.train.batch import is_pair


def mine_hard_negatives(xq: np.ndarray, xpool: np.ndarray, queries: np.ndarray, pool: np.ndarray,
                        cluster: np.ndarray, keys: np.ndarray, n_images: int, num_neg: int) -> list[list[int]]:
    """For each query, the ``num_neg`` most similar pool images that may serve as negatives.

    A pool image is skipped when it is the query, a known positive of it, in the query's cluster, or in a
    cluster that already gave a negative to this query (one negative per cluster, as cirtorch). Images with
    cluster -1 (unknown) are never excluded by cluster.

    Args:
        xq: (Q, D) query embeddings; xpool: (P, D) pool embeddings (L2-normalised).
        queries: (Q,) image index of each query; pool: (P,) image index of each pool image.
        cluster: (N,) cluster of every image. keys: pair keys (:func:`~retrievalkit.train.batch.pair_keys`).
        n_images: N. num_neg: negatives per query.
    Returns:
        per query, the list of negative image indices (fewer when the pool runs out).
    """
    sims = xq @ xpool.T
    order = np.argsort(-sims, axis=1, kind="stable")
    out = []
    for t, q in enumerate(queries):
        cq = cluster[q]
        used: set[int] = set()
        negs: list[int] = []
        cand = pool[order[t]]
        bad = is_pair(keys, np.full(len(cand), q), cand, n_images) | (cand == q)
        for img, b in zip(cand, bad):
            if len(negs) >= num_neg:
                break
            c = int(cluster[img])
            if b or (c >= 0 and (c == cq or c in used)):
                continue
            negs.append(int(img))
            if c >= 0:
                used.add(c)
        out.append(negs)
    return out
