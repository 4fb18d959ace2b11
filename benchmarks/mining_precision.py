"""Precision of manifold-mined positives / negatives against scene labels, vs plain Euclidean kNN mining.

Usage:
    .venv/bin/python benchmarks/mining_precision.py [FEATS.h5] [GND.json] [--graph-k 10] [--anchors 50]

With ``gnd+distractors.json`` each distractor counts as a scene of its own.
FEATS.h5: landmarks-dev database features, made with
    D=../shared/data/landmarks-dev
    rkit extract $D/images --gnd $D/gnd.json --split database -o lm-db.h5
GND default: ../shared/data/landmarks-dev/gnd.json, whose ``db_instance`` gives the scene of every database image.
Positive precision: fraction of (anchor, positive) pairs of the same scene; negative precision: fraction
of (anchor, negative) pairs of different scenes. "sim" is the mean descriptor similarity to the anchor
(lower for positives / higher for negatives = harder examples). Both methods use the same anchors.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from retrievalkit.images.discover import strip_extension
from retrievalkit.io.features import read_features
from retrievalkit.mining.manifold import mine_manifold
from retrievalkit.search.exact import knn_graph

ROOT = Path(__file__).resolve().parents[1]


def evaluate(mined, labels, x):
    pos = [(labels[p] == labels[a], x[p] @ x[a]) for a, p in zip(mined.anchors, mined.positives)]
    neg = [(labels[n] != labels[a], x[n] @ x[a]) for a, n in zip(mined.anchors, mined.negatives)]

    def agg(parts):
        ok = np.concatenate([o for o, _ in parts]) if parts else np.zeros(0)
        sim = np.concatenate([s for _, s in parts]) if parts else np.zeros(0)
        return ok.size, (100 * ok.mean() if ok.size else float("nan")), (sim.mean() if sim.size else float("nan"))

    return agg(pos), agg(neg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("features", help="database features (rkit extract ... --split database)")
    ap.add_argument("gnd", nargs="?", default=str(ROOT.parent / "shared/data/landmarks-dev/gnd.json"))
    ap.add_argument("--graph-k", type=int, default=10)
    ap.add_argument("--anchors", type=int, default=50)
    ap.add_argument("--ks", default="5,10,20")
    args = ap.parse_args()

    feats = read_features(args.features)
    gnd = json.loads(Path(args.gnd).read_text())
    scene_of = {strip_extension(n): s for n, s in zip(gnd["imlist"], gnd["db_instance"])}
    # every distractor is a scene of its own
    labels = np.array([s if s != "distractor" else f"distractor:{n}"
                       for n, s in ((n, scene_of[strip_extension(n)]) for n in feats.names)])
    x = feats.vectors
    t0 = time.time()
    sims, ids = knn_graph(x, args.graph_k)
    print(f"# {args.features}: {len(x)} images, {len(set(labels))} scenes; kNN graph k={args.graph_k} "
          f"(edge precision {100 * (labels[ids] == labels[:, None]).mean():.1f}%)")
    print("| k | method | anchors | positives | pos. precision % | pos. sim | negatives | neg. precision % "
          "| neg. sim |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k in (int(v) for v in args.ks.split(",")):
        for method in ("manifold", "euclidean"):
            m = mine_manifold(x, sims, ids, method=method, n_anchors=args.anchors, k_pos=k, k_neg=k)
            (pn, pp, ps), (nn, npr, ns) = evaluate(m, labels, x)
            print(f"| {k} | {method} | {len(m.anchors)} | {pn} | {pp:.1f} | {ps:.3f} | {nn} | {npr:.1f} | {ns:.3f} |")
    print(f"# {time.time() - t0:.1f} s in all")


if __name__ == "__main__":
    main()
