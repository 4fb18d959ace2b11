"""Recognition by label propagation (rkit propagate) vs nearest-neighbour classification on landmarks-dev.

A few database images per scene carry their scene label; every other image of the collection (the rest of
the database, the 25 queries and, with ``gnd+distractors.json``, the 500 distractors) gets a predicted scene
and a confidence. Accuracy is over the images that have a scene; GAP (Google Landmarks global average
precision) sorts all predictions by confidence, so distractors (never right) hurt unless they come last.
Several random draws of the labelled images per setting; mean +- std over draws.

Usage (features made once, EfficientNet-Lite0 GeM defaults, about 2 min on a CPU):
    D=../shared/data/landmarks-dev
    rkit extract $D/images --gnd $D/gnd+distractors.json --split database -o lm-db.h5
    rkit extract $D/images --gnd $D/gnd+distractors.json --split queries -o lm-q.h5
    .venv/bin/python benchmarks/label_propagation.py lm-db.h5 lm-q.h5 [--gnd $D/gnd+distractors.json]
        [--shots 1,2,5] [--draws 10] [--graph-k K] [--no-mutual]

kNN baseline: each image takes the scene of its most similar labelled image, confidence = that cosine.
Label propagation: ``retrievalkit.diffusion.propagation.propagate_labels`` with the stage's defaults
(graph k = 1 % of the images within [5, 50], mutual, gamma 3, alpha 0.99, 20 CG iterations) on the graph
of all images; confidence = the predicted class's share of the diffusion scores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from retrievalkit.diffusion.graph import graph_from_vectors
from retrievalkit.diffusion.propagation import PropagationConfig, knn_classify, propagate_labels
from retrievalkit.evaluate.recognition import accuracy, global_average_precision
from retrievalkit.images.discover import strip_extension
from retrievalkit.io.features import read_features

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_GND = ROOT.parent / "shared" / "data" / "landmarks-dev" / "gnd+distractors.json"


def scene_of(names, gnd_names, instances):
    lookup = {n: s for n, s in zip(gnd_names, instances)}
    out = []
    for n in names:
        s = lookup.get(strip_extension(n), lookup.get(n))
        if s is None:
            raise SystemExit(f"error: {n!r} is not in the ground truth; extract with the same gnd file")
        out.append(None if s == "distractor" else s)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("database")
    ap.add_argument("queries")
    ap.add_argument("--gnd", default=str(DEFAULT_GND))
    ap.add_argument("--shots", default="1,2,5", help="labelled database images per scene")
    ap.add_argument("--draws", type=int, default=10, help="random draws of the labelled images per setting")
    ap.add_argument("--graph-k", type=int, default=None)
    ap.add_argument("--mutual", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()
    gnd = json.loads(Path(args.gnd).read_text())
    db, q = read_features(args.database), read_features(args.queries)
    x = np.concatenate([db.vectors, q.vectors]).astype(np.float32)
    truth = (scene_of(db.names, gnd["imlist"], gnd["db_instance"])
             + scene_of(q.names, gnd["qimlist"], gnd["query_instance"]))
    n_db = len(db.names)
    scenes = sorted({s for s in truth if s is not None})
    cls = {s: j for j, s in enumerate(scenes)}
    cfg = PropagationConfig(graph_k=args.graph_k, mutual=args.mutual).resolve(len(x))
    knn = graph_from_vectors(x, cfg.graph_k)
    print(f"{len(x)} images ({n_db} database incl. {sum(t is None for t in truth)} distractors, {len(q.names)} "
          f"queries), {len(scenes)} scenes; graph k={cfg.graph_k} {'mutual' if cfg.mutual else 'union'}, "
          f"gamma={cfg.gamma}, alpha={cfg.alpha}, {cfg.iters} CG iterations; {args.draws} draws per setting")
    rows = []
    for shots in [int(s) for s in args.shots.split(",")]:
        res = {"knn": [], "lp": [], "lp-raw": []}
        times = []
        for draw in range(args.draws):
            rng = np.random.default_rng([shots, draw])
            seeds = np.full(len(x), -1, dtype=np.int64)
            for s in scenes:
                members = [i for i in range(n_db) if truth[i] == s]
                seeds[rng.choice(members, min(shots, len(members)), replace=False)] = cls[s]
            test = np.flatnonzero(seeds < 0)
            t_truth = [truth[i] for i in test]
            lab_k, conf_k = knn_classify(x, seeds)
            t0 = time.perf_counter()
            pr = propagate_labels(x, seeds, len(scenes), cfg, knn=knn)
            times.append(time.perf_counter() - t0)
            raw = np.maximum(pr.scores, 0).max(axis=1)
            raw[seeds >= 0] = np.inf
            for key, (lab, conf) in (("knn", (lab_k, conf_k)), ("lp", (pr.label, pr.confidence)),
                                     ("lp-raw", (pr.label, raw))):
                pred = [scenes[lab[i]] for i in test]
                res[key].append((100 * accuracy(pred, t_truth),
                                 100 * global_average_precision(pred, conf[test], t_truth)))
        for key, name in (("knn", "nearest labelled image (1-NN), confidence = cosine"),
                          ("lp", "label propagation, confidence = class share (rkit propagate)"),
                          ("lp-raw", "label propagation, confidence = largest diffusion score")):
            a = np.asarray(res[key])
            rows.append((shots, name, a[:, 0].mean(), a[:, 0].std(), a[:, 1].mean(), a[:, 1].std()))
        print(f"  {shots} labelled per scene: propagation {np.median(times) * 1e3:.0f} ms per draw (median)",
              flush=True)
    print()
    print("| labelled per scene | method | accuracy % | GAP % |")
    print("|---|---|---|---|")
    for shots, name, am, asd, gm, gsd in rows:
        print(f"| {shots} | {name} | {am:.1f} ± {asd:.1f} | {gm:.1f} ± {gsd:.1f} |")


if __name__ == "__main__":
    main()
