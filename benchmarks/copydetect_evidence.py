"""copydetect-dev: which verified pairs should get `rkit copy-detect`'s score bonus? Fixed inlier counts against
the a-contrario number of false alarms, with the multiple-test factor per query (as `rkit verify`) or over every
pair verified in the run (`rkit copy-detect --promote significant`, the default).

Run: .venv/bin/python benchmarks/copydetect_evidence.py [--cache DIR] [--limit N]
The candidates and every shortlisted pair's evidence (inliers, log10 NFA) are those of the default
`rkit copy-detect --queries Q --database R --training T -o m.csv` (the same functions); they are cached in DIR, so
a re-run only re-scores. Prints the statistics of the evidence of correct and wrong pairs, then one row per rule:
the pairs given the bonus (correct / wrong), µAP, and its safety: "wrong ↑" = wrong pairs lifted above a correct
pair they were below in the pooled list that µAP ranks, "correct ↓" = correct pairs with more wrong pairs above
them than without verification; the same within each query's own list. Limit compared: no verification.
"""
# ruff: noqa: E741  (faiss naming from STYLE.md: D scores, I ids)

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from retrievalkit.configs.copydetect import CopyDetectConfig, VerifyConfig
from retrievalkit.copydetect.stage import _NetHolder, load_side, match_queries
from retrievalkit.copydetect.submission import select_matches
from retrievalkit.copydetect.verify import LocalMatcher, verification_bonus
from retrievalkit.evaluate.copydetect import Predictions, evaluate_copy_detection, read_ground_truth_csv

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "copydetect-dev"


def candidates_and_evidence(limit: int | None) -> dict:
    """Default copy-detect candidates (before verification) and each shortlisted pair's evidence."""
    cfg = CopyDetectConfig(workers=0).resolved(True)
    vcfg = cfg.verify
    nets = _NetHolder(cfg)
    t0 = time.time()
    q = load_side(DATA / "queries", "query", cfg, nets, cfg.query_views)
    if limit:
        keep = q.owner < limit
        q.ids, q.vectors, q.owner, q.paths = q.ids[:limit], q.vectors[keep], q.owner[keep], q.paths[:limit]
    r = load_side(DATA / "references", "reference", cfg, nets, "full")
    t = load_side(DATA / "training", "training", cfg, nets, "full")
    D, I, _ = match_queries(q, r, t, CopyDetectConfig(workers=0, verify=None).resolved(True))
    t1 = time.time()
    matcher = LocalMatcher(vcfg)
    inl = np.full(I.shape, -1, np.int64)
    lnfa = np.full(I.shape, np.inf)
    for qi in range(I.shape[0]):
        for j in range(min(vcfg.top, I.shape[1])):
            if I[qi, j] >= 0:
                inl[qi, j], lnfa[qi, j] = matcher.evidence(q.paths[qi], r.paths[int(I[qi, j])])
    t2 = time.time()
    print(f"described and searched in {t1 - t0:.0f} s, verified {int((inl >= 0).sum())} pairs in {t2 - t1:.0f} s "
          f"({(t2 - t1) / max(len(q.ids), 1):.2f} s per query)")
    return dict(D=np.asarray(D, np.float64), I=np.asarray(I), inl=inl, lnfa=lnfa, qids=np.array(q.ids),
                rids=np.array(r.ids))


def safety(pre: np.ndarray, post: np.ndarray, correct: np.ndarray, valid: np.ndarray) -> tuple[int, int, int, int]:
    """(wrong ↑, correct ↓) in the pooled list, then the same within each query's list."""
    c_pre, c_post = pre[valid & correct], post[valid & correct]
    w_pre, w_post = pre[valid & ~correct], post[valid & ~correct]
    lifted = np.zeros(w_pre.size, bool)
    fell = 0
    for a, b in zip(c_pre, c_post):
        lifted |= (w_pre < a) & (w_post > b)
        fell += int((w_post > b).sum() > (w_pre > a).sum())
    lifted_q, fell_q = 0, 0
    for qi in range(pre.shape[0]):
        w = valid[qi] & ~correct[qi]
        up = np.zeros(w.sum(), bool)
        for j in np.flatnonzero(valid[qi] & correct[qi]):
            above = (pre[qi, w] < pre[qi, j]) & (post[qi, w] > post[qi, j])
            up |= above
            fell_q += int(above.any())
        lifted_q += int(up.sum())
    return int(lifted.sum()), fell, lifted_q, fell_q


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/rkit-copydetect-evidence"))
    ap.add_argument("--limit", type=int, default=None, help="first N queries only (a quick check)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)  # shared cores: more threads only spin
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} not found: this benchmark needs ../shared/data/copydetect-dev")
    args.cache.mkdir(parents=True, exist_ok=True)
    key = args.cache / f"evidence-{args.limit or 'all'}.npz"
    if not key.exists():
        np.savez(key, **candidates_and_evidence(args.limit))
    z = np.load(key)
    D, I, inl, lnfa = z["D"], z["I"], z["inl"], z["lnfa"]
    qids, rids = z["qids"].tolist(), z["rids"].tolist()
    gt = read_ground_truth_csv(DATA / "ground_truth.csv")
    cfg = VerifyConfig()
    valid = I >= 0
    correct = np.array([[I[q, j] >= 0 and (qids[q], rids[I[q, j]]) in gt.pairs for j in range(I.shape[1])]
                        for q in range(I.shape[0])])
    ver = inl >= 0
    flip = math.log10(2) if cfg.flip else 0.0
    per_query = lnfa + flip + math.log10(min(cfg.top, I.shape[1]))  # log10 NFA, tests: one query's shortlist
    per_run = lnfa + flip + math.log10(max(int(ver.sum()), 1))  # tests: every pair verified in the run

    print(f"{int(ver.sum())} pairs verified: {int((ver & correct).sum())} correct, {int((ver & ~correct).sum())} "
          f"wrong; {gt.num_positives} true pairs")
    for name, m in (("correct", ver & correct), ("wrong", ver & ~correct)):
        x = inl[m]
        print(f"  {name}: inliers ≥ 8 / ≥ 12: {(x >= 8).sum()} / {(x >= 12).sum()}, most {x.max() if x.size else 0};"
              f" NFA < 1 per query: {(per_query[m] < 0).sum()}, per run: {(per_run[m] < 0).sum()}")

    def uap(S: np.ndarray) -> float:
        mt = select_matches(qids, rids, S, I, 10)
        p = Predictions.from_triples(zip(mt.query_ids, mt.reference_ids, mt.scores.tolist()))
        return evaluate_copy_detection(p, gt).micro_ap

    rules = [("no verification (--no-verify)", np.zeros(I.shape, bool))]
    rules += [(f"≥ {n} inliers" + (" (--promote min-inliers)" if n == cfg.min_inliers else ""), ver & (inl >= n))
              for n in (8, 12, 16)]
    rules += [(f"NFA < {e:g} per run" + (" (default)" if e == cfg.nfa else ""), ver & (per_run < math.log10(e)))
              for e in (0.1, 1, 10)]
    rules += [(f"NFA < {e:g} per query", ver & (per_query < math.log10(e))) for e in (0.1, 1, 10)]
    rules += [("NFA < 1 per query and ≥ 12 inliers", ver & (per_query < 0) & (inl >= cfg.min_inliers))]
    print("\n| rule | bonus to correct / wrong | µAP | wrong ↑ | correct ↓ | within query: wrong ↑ / correct ↓ |")
    print("|---|---|---|---|---|---|")
    for name, m in rules:
        post = D + verification_bonus(inl, cfg, m)
        w, c, wq, cq = safety(D, post, correct, valid)
        print(f"| {name} | {int((m & correct).sum())} / {int((m & ~correct).sum())} | {uap(post):.4f} | {w} | {c} "
              f"| {wq} / {cq} |")


if __name__ == "__main__":
    main()
