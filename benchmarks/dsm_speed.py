"""Deep Spatial Matching vs SIFT (and deep HOW locals): extraction time per image and verification time per pair.

Side by side in one run, interleaved image by image (the machine is shared and noisy, so read the ratios):
the describers of ``rkit extract --local`` — DSM (``--local-method dsm``, head map, one scale), RootSIFT
(``--local-method sift``, 2000 features) and deep HOW locals (s16, 4 scales, no PCA) — on the same photos at
the same ``--size``, then ``verify.rerank.match_pair`` (what ``rkit verify`` runs per shortlisted image) on
every ordered pair of those photos with each kind of locals.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dsm_speed.py                  # demo photos, 1024 px
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dsm_speed.py --images ../shared/data/pairs-dev/images --n 12

Limits compared: CPU time (one thread; wall time too, which a busy machine inflates) per image of DSM / SIFT
(and / deep), CPU time per pair of DSM / SIFT verification.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "demo"
                                            / "images"))
    ap.add_argument("--n", type=int, default=10, help="photos (the first n by name)")
    ap.add_argument("--size", type=int, default=1024)
    args = ap.parse_args()
    root = Path(args.images)
    if not root.is_dir():
        raise SystemExit(f"{root}: no such folder (the shared data folder is absent)")
    import torch

    torch.set_num_threads(1)
    from retrievalkit.configs.extract import DSM_CHANNELS
    from retrievalkit.configs.verify import VerifyParams
    from retrievalkit.extract.local_deep import DEFAULT_SCALES, LocalBackbone
    from retrievalkit.extract.local_desc import deep_describer, dsm_describer, sift_describer
    from retrievalkit.models.registry import create_backbone, seeded_init
    from retrievalkit.verify.rerank import match_pair

    names = sorted(str(p.relative_to(root)) for p in root.rglob("*.jpg"))[: args.n]
    with seeded_init():
        bb = create_backbone("efficientnet-lite0").eval()
    describers = {
        "dsm": dsm_describer(LocalBackbone(bb, "head").eval(), root, names, None, args.size, DSM_CHANNELS, 1000,
                             "cpu"),
        "sift": sift_describer(root, names, None, args.size, 2000),
        "deep": deep_describer(LocalBackbone(bb, "s16").eval(), root, names, None, args.size, DEFAULT_SCALES, 1000,
                               True, "cpu"),
    }
    for d in describers.values():  # warm up (model, OpenCV)
        d(0)
    times = {k: [] for k in describers}
    feats = {k: [] for k in describers}
    for i in range(len(names)):
        for k, d in describers.items():
            t, c = time.perf_counter(), time.process_time()
            kp, desc, _ = d(i)
            times[k].append((time.perf_counter() - t, time.process_time() - c))
            feats[k].append((kp, desc))
    print(f"{len(names)} photos of {root.name}, --size {args.size}, one thread\n")
    print("| extraction | CPU s / image (median) | wall s / image (median) | features / image (median) | CPU vs SIFT |")
    print("|---|---|---|---|---|")
    sift_cpu = float(np.median([c for _, c in times["sift"]]))
    for k in describers:
        wall, cpu = (float(np.median([t[n] for t in times[k]])) for n in (0, 1))
        print(f"| {k} | {cpu:.3f} | {wall:.3f} | {int(np.median([len(f[0]) for f in feats[k]]))} | "
              f"{cpu / sift_cpu:.2f}× |")
    p = VerifyParams()
    vt = {k: [] for k in ("dsm", "sift")}
    for i in range(len(names)):
        for j in range(len(names)):
            if i == j:
                continue
            for k in vt:
                (k1, d1), (k2, d2) = feats[k][i], feats[k][j]
                c = time.process_time()
                match_pair(k1, d1, k2, d2, p, k)
                vt[k].append(time.process_time() - c)
    print("\n| verification (match_pair) | CPU ms / pair (median) | CPU ms / pair (90th pct) | vs SIFT |")
    print("|---|---|---|---|")
    for k in vt:
        med = 1000 * float(np.median(vt[k]))
        print(f"| {k} | {med:.1f} | {1000 * float(np.percentile(vt[k], 90)):.1f} | "
              f"{med / (1000 * float(np.median(vt['sift']))):.2f}× |")


if __name__ == "__main__":
    main()
