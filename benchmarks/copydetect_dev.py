"""copydetect-dev ablation: µAP and recall@P90 of raw descriptors, + normalisation, + whitening, + multi-crop,
+ local verification (matching track), and the descriptor track.

Run: .venv/bin/python benchmarks/copydetect_dev.py [--cache DIR] [--size 320] [--features-dir DIR]
Descriptors are cached in DIR (npz) so re-runs only search. Limit compared: the off-the-shelf figures of
../shared/data/README.md (µAP 0.721 raw, 0.736 normalised; longer side 320, top-10 references per query).
"""
# ruff: noqa: E741  (faiss naming from STYLE.md: D scores, I ids)

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from retrievalkit.copydetect import CopyDetectConfig, Side, VerifyConfig, descriptor_track, match_queries
from retrievalkit.copydetect.crops import describe_views, parse_views
from retrievalkit.copydetect.submission import image_ids, select_matches
from retrievalkit.evaluate.copydetect import (
    Predictions,
    descriptor_track_predictions,
    evaluate_copy_detection,
    read_ground_truth_csv,
)
from retrievalkit.images.discover import find_images

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "copydetect-dev"


def side(folder: Path, views: str, size: int, cache: Path, net_holder: list, feats: Path | None) -> Side:
    names = find_images(folder)
    paths = [folder / n for n in names]
    ids = image_ids(names, folder)
    if feats is not None and feats.exists() and views == "full":
        from retrievalkit.io.features import read_features

        f = read_features(feats)
        assert [Path(n).stem for n in f.names] == ids, feats
        return Side(ids, f.vectors, np.arange(len(ids)), paths, str(feats))
    key = cache / f"{folder.name}-{views.replace(',', '+')}-{size}.npz"
    if not key.exists():
        if not net_holder:
            from retrievalkit.extract.global_desc import build_network

            net_holder.append(build_network("efficientnet-lite0", device="cpu"))
        t0 = time.time()
        x, owner, failed = describe_views(net_holder[0], folder, names, size, parse_views(views), (1.0,), workers=1)
        assert not failed, failed
        np.savez(key, x=x, owner=owner)
        print(f"  described {folder.name} ({views}): {x.shape} in {time.time() - t0:.0f}s")
    z = np.load(key)
    return Side(ids, z["x"], z["owner"], paths, str(key))


def score(q: Side, r: Side, t: Side | None, cfg: CopyDetectConfig, gt) -> tuple[float, float]:
    D, I, _ = match_queries(q, r, t, cfg)
    m = select_matches(q.ids, r.ids, D, I, cfg.top_k, cfg.max_rows)
    res = evaluate_copy_detection(Predictions.from_triples(zip(m.query_ids, m.reference_ids, m.scores)), gt)
    return res.micro_ap, res.recall_at_p90


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/rkit-copydetect-cache"))
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--features-dir", type=Path, default=Path(""),
                    help="folder with cd-{queries,references,training}-SIZE.h5 to reuse (default: extract here)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)  # shared cores: more threads only spin
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} not found: this benchmark needs ../shared/data/copydetect-dev")
    args.cache.mkdir(parents=True, exist_ok=True)
    gt = read_ground_truth_csv(DATA / "ground_truth.csv")
    holder: list = []
    fd = args.features_dir

    def feats(name):
        return fd / f"cd-{name}-{args.size}.h5" if str(fd) not in ("", ".") else None

    q1 = side(DATA / "queries", "full", args.size, args.cache, holder, feats("queries"))
    crops = side(DATA / "queries", "center,grid", args.size, args.cache, holder, None)
    r = side(DATA / "references", "full", args.size, args.cache, holder, feats("references"))
    t = side(DATA / "training", "full", args.size, args.cache, holder, feats("training"))
    # full view first, then the crops, views of an image consecutive
    x = np.concatenate([q1.vectors, crops.vectors])
    owner = np.concatenate([q1.owner, crops.owner])
    order = np.argsort(owner, kind="stable")
    qm = Side(q1.ids, x[order], owner[order], q1.paths, f"{q1.source} + {crops.source}")
    print(f"sources: queries {q1.source}, references {r.source}, training {t.source}")

    base = CopyDetectConfig(size=args.size, dim=0, norm_beta=0.0, top_k=10, query_views="full", verify=None)
    rows = [
        ("raw descriptors (GeM, 1280-d)", q1, None, base),
        ("+ normalisation (β=1, mean top-3)", q1, t, replace(base, norm_beta=1.0)),
        ("  (variant: β=2, 10th neighbour)", q1, t, replace(base, norm_beta=2.0, norm_k=10, norm_stat="kth")),
        ("+ PCA-whitening (training)", q1, t, replace(base, norm_beta=1.0, dim=256)),
        ("+ multi-crop (full,center,grid; max)", qm, t,
         replace(base, norm_beta=1.0, dim=256, query_views="full,center,grid")),
        ("  (multi-crop, mean)", qm, t,
         replace(base, norm_beta=1.0, dim=256, query_views="full,center,grid", combine="mean")),
    ]
    out = []
    for label, q, tt, cfg in rows:
        t0 = time.time()
        uap, rp = score(q, r, tt, cfg, gt)
        out.append((label, uap, rp, time.time() - t0))
        print(f"{label:44s} µAP {uap:.4f}  R@P90 {rp:.4f}  ({time.time() - t0:.1f}s)", flush=True)
    vcfg = replace(rows[4][3], verify=VerifyConfig())
    t0 = time.time()
    uap, rp = score(qm, r, t, vcfg, gt)
    out.append(("+ local verification (SIFT+RANSAC, top 10)", uap, rp, time.time() - t0))
    print(f"{out[-1][0]:44s} µAP {uap:.4f}  R@P90 {rp:.4f}  ({time.time() - t0:.1f}s)", flush=True)
    # descriptor track: one vector per image (views averaged), normalisation folded into one extra dimension
    for label, q, cfg in (("descriptor track (whitened + norm.)", q1, replace(base, norm_beta=1.0, dim=256)),
                          ("  (descriptor track, mean of the 6 views)", replace(qm, full_view=None),
                           replace(base, norm_beta=1.0, dim=256, query_views="full,center,grid"))):
        xq, xr = descriptor_track(q, r, t, cfg)
        res = evaluate_copy_detection(descriptor_track_predictions(q.ids, xq, r.ids, xr), gt)
        out.append((label + f", {xq.shape[1]}-d", res.micro_ap, res.recall_at_p90, 0.0))
        print(f"{out[-1][0]:44s} µAP {res.micro_ap:.4f}  R@P90 {res.recall_at_p90:.4f}", flush=True)
    print("\n| setting | µAP | recall@P90 |\n|---|---|---|")
    for label, uap, rp, _ in out:
        print(f"| {label.strip()} | {uap:.3f} | {rp:.3f} |")
    print("off-the-shelf reference (data README): µAP 0.721 raw, 0.736 normalised")


if __name__ == "__main__":
    main()
