"""Time per pair of the geometric check: RANSAC (homography, affine) vs Hough Pyramid Matching, side by side.

Real photos: RootSIFT of the bundled demo photos (``../shared/data/demo/images``, ``--max-features`` per image)
matched pairwise (mutual nearest neighbours + ratio 0.8, as ``rkit verify`` does); the tentative matches of each
pair are computed once and every method checks the same ones, interleaved pair by pair so that a busy machine
slows them alike. Printed: mean milliseconds per pair of matching and of each check, the check's ratio to HPM,
and how many pairs each finds conclusive (NFA < 1 with a shortlist of 100) among same-scene and
other-scene pairs.

    .venv/bin/python benchmarks/verify_hpm.py                 # 24 images, 2000 features each
    .venv/bin/python benchmarks/verify_hpm.py --images 12 --max-features 1000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

DEMO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "demo" / "images"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--max-features", type=int, default=2000)
    ap.add_argument("--size", type=int, default=1024)
    a = ap.parse_args(argv)
    if not DEMO.is_dir():
        print(f"skipped: no demo photos at {DEMO}", file=sys.stderr)
        return 0
    from retrievalkit.configs.verify import VerifyParams
    from retrievalkit.extract.sift import sift_features
    from retrievalkit.images import load_image, resize_longer
    from retrievalkit.verify.geometry import match_descriptors
    from retrievalkit.verify.rerank import check_matches

    paths = sorted(DEMO.rglob("*.jpg"))
    rng = np.random.default_rng(0)
    paths = [paths[i] for i in sorted(rng.choice(len(paths), min(a.images, len(paths)), replace=False))]
    feats = []
    for p in paths:
        img = load_image(p, gray=True)
        small = resize_longer(img, a.size)
        kp, d = sift_features(small, a.max_features)
        kp = kp.copy()
        kp[:, :3] *= img.shape[1] / small.shape[1]
        feats.append((p.parent.name, kp, d, (img.shape[1], img.shape[0])))
    methods = ["homography", "affine", "hpm"]
    t_match, n_pairs = 0.0, 0
    t = dict.fromkeys(methods, 0.0)
    found = {m: [0, 0] for m in methods}
    pairs_same = pairs_other = 0
    for i in range(len(feats)):
        for j in range(len(feats)):
            if i == j:
                continue
            s1, k1, d1, _ = feats[i]
            s2, k2, d2, size2 = feats[j]
            t0 = time.perf_counter()
            m = match_descriptors(d1, d2, ratio=0.8, mutual=True)
            t_match += time.perf_counter() - t0
            n_pairs += 1
            same = s1 == s2
            pairs_same += same
            pairs_other += not same
            for meth in methods:
                p = VerifyParams(method=meth)
                t0 = time.perf_counter()
                _, ev = check_matches(k1, k2, m, p, "sift", 8.0, size2=size2, tests=100)
                t[meth] += time.perf_counter() - t0
                if ev.log10_nfa < 0:
                    found[meth][0 if same else 1] += 1
    print(f"{len(feats)} demo photos, {a.max_features} RootSIFT each at {a.size} px, {n_pairs} ordered pairs "
          f"({pairs_same} same scene, {pairs_other} not)\n")
    print("| step | ms per pair | ratio to HPM | conclusive same-scene pairs | conclusive other-scene pairs |")
    print("|---|---|---|---|---|")
    print(f"| tentative matches (mutual NN + ratio) | {1e3 * t_match / n_pairs:.2f} | "
          f"{t_match / max(t['hpm'], 1e-12):.1f} | | |")
    for meth in methods:
        label = "Hough Pyramid Matching" if meth == "hpm" else f"RANSAC {meth} (MAGSAC++ where available)"
        if meth == "affine":
            label = "RANSAC affine"
        print(f"| {label} | {1e3 * t[meth] / n_pairs:.2f} | {t[meth] / max(t['hpm'], 1e-12):.1f} | "
              f"{found[meth][0]} / {pairs_same} | {found[meth][1]} / {pairs_other} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
