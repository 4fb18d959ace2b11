"""How much of an ASMK* figure is the codebook's draw: Medium mAP of one seed under input changes that
should not matter.

The k-means codebook is trained on a sample of the database descriptors drawn by row index
(``train_codebook``: 32 per word), so storing the same features of each image in another order changes the
sample, while changes of the values that keep the order (a sign flip of some dimensions, noise of the size of
float32 rounding) do not. Each row of the table is one variant, the same seed, index and search as
``rkit index asmk`` / ``rkit index search-asmk`` with their defaults:

    python benchmarks/asmk_codebook_draws.py --database db.deep.h5 --queries q.deep.h5 \
        --gnd ../shared/data/pairs-dev/gnd.json [--seed 0] [--orders 4] [--noise 1e-7] [-k 700]

Variants: ``as stored``; ``sign flip`` (every third dimension of database and queries negated); ``noise``
(N(0, --noise) added to every database value); ``order j`` (the rows of each database image permuted, random
generator j; the same features, in another order).
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np


def asmk_map(db, q, x: np.ndarray, y: np.ndarray, seed: int, k: int, gnd: str) -> float:
    """Medium mAP of ASMK* with database descriptors ``x`` (rows of ``db``) and query descriptors ``y``."""
    from retrievalkit.evaluate.stage import evaluate_ranks_file
    from retrievalkit.io.ranks import Ranks, write_ranks
    from retrievalkit.search.asmk import InvertedFileBuilder, auto_codebook_size, search_asmk, train_codebook

    codebook = train_codebook(x, auto_codebook_size(x.shape[0]), seed=seed)
    builder = InvertedFileBuilder(codebook)
    builder.add(x, db.offsets)
    scores, ids = search_asmk(builder.finish({}), y, q.offsets, k=k)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ranks.h5")
        write_ranks(path, Ranks(q.names, db.names, ids, scores, {"method": "asmk*"}))
        return float(evaluate_ranks_file(path, gnd)["map"]["medium"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database", required=True, help="database locals (rkit extract --local)")
    ap.add_argument("--queries", required=True, help="query locals (extracted with --pca DATABASE)")
    ap.add_argument("--gnd", required=True, help="revisitop ground truth")
    ap.add_argument("--seed", type=int, default=0, help="k-means seed (rkit index asmk --seed)")
    ap.add_argument("--orders", type=int, default=4, help="random within-image orders to try")
    ap.add_argument("--noise", type=float, default=1e-7, help="standard deviation of the added noise")
    ap.add_argument("-k", type=int, default=700, help="results kept per query")
    args = ap.parse_args()

    from retrievalkit.io.locals import read_locals

    db, q = read_locals(args.database), read_locals(args.queries)
    x0, y0 = db.descriptors.astype(np.float32), q.descriptors.astype(np.float32)
    sign = np.where(np.arange(x0.shape[1]) % 3 == 0, -1, 1).astype(np.float32)
    variants = [("as stored", x0, y0), ("sign flip", x0 * sign, y0 * sign),
                (f"noise {args.noise:g}",
                 x0 + np.random.default_rng(0).normal(0, args.noise, x0.shape).astype(np.float32), y0)]
    o = db.offsets
    for j in range(args.orders):
        rng = np.random.default_rng(j)
        perm = np.concatenate([o[i] + rng.permutation(o[i + 1] - o[i]) for i in range(len(o) - 1)])
        variants.append((f"order {j}", x0[perm], y0))
    print(f"ASMK* Medium mAP, --seed {args.seed}, {x0.shape[0]} database descriptors, -k {args.k}")
    print("| variant | mAP |\n|---|---|")
    for name, x, y in variants:
        print(f"| {name} | {asmk_map(db, q, x, y, args.seed, args.k, args.gnd):.2f} |", flush=True)


if __name__ == "__main__":
    main()
