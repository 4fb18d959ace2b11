"""What a DISC21-sized run costs: measured growth of the normalised search, projected to 1M references × 50k queries.

Run: .venv/bin/python benchmarks/copydetect_scale.py [--queries 1000] [--refs 20000,40000,80000] [--device cpu]
Synthetic unit vectors (256-d after PCA-whitening, +1 normalisation dimension). Times are wall-clock on this
machine (shared cores: treat them as upper bounds); memory is the peak resident size of the process.
The projection assumes time ∝ Q × R (exact search) and memory ∝ R (the reference matrix) + block × k results.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from retrievalkit.copydetect.normalize import normalized_search


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def unit(rng, n, d):
    x = rng.standard_normal((n, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--refs", default="20000,40000,80000")
    ap.add_argument("--training", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    xq = unit(rng, args.queries, args.dim)
    xt = unit(rng, args.training, args.dim)
    rows = []
    for nr in (int(v) for v in args.refs.split(",")):
        xr = unit(rng, nr, args.dim)
        normalized_search(xq[:10], xr, 10, xt, 1.0, 3, device=args.device)  # warm-up
        t0 = time.perf_counter()
        normalized_search(xq, xr, 10, xt, 1.0, 3, block=1024, device=args.device)
        dt = time.perf_counter() - t0
        rows.append((nr, dt, peak_rss_mb()))
        del xr
    print("| references | queries | search s | ns per pair | peak RSS MB |\n|---|---|---|---|---|")
    for nr, dt, mem in rows:
        print(f"| {nr} | {args.queries} | {dt:.2f} | {dt / (nr * args.queries) * 1e9:.1f} | {mem:.0f} |")
    # growth: time per pair at the largest size, projected
    nr, dt, _ = rows[-1]
    per_pair = dt / (nr * args.queries)
    big_q, big_r, views = 50_000, 1_000_000, 6
    t_search = per_pair * big_q * views * big_r
    ref_gb = big_r * (args.dim + 1) * 4 / 1e9
    print(f"\nprojection, 1M references x 50k queries x {views} views, exact search on this machine: "
          f"{t_search / 3600:.1f} h of search ({per_pair * 1e9:.2f} ns per pair); reference matrix "
          f"{ref_gb:.2f} GB float32 (+ training 1M: same again for b(q)); results Q x views x 10 x 12 B = "
          f"{big_q * views * 10 * 12 / 1e6:.0f} MB")
    print(f"ratio of the measured sizes: time x{rows[-1][1] / rows[0][1]:.2f} for references x"
          f"{rows[-1][0] / rows[0][0]:.1f} (linear growth expected)")


if __name__ == "__main__":
    main()
