# ruff: noqa: E741  (faiss naming: D distances, I ids)
"""Speed and memory of `rkit diffuse` on a synthetic clustered database (128-D, points along curves).

For each database size: graph build time (exact k-NN, affinity, normalisation), then the per-query latency
of batched CG, truncated diffusion and fast spectral ranking against the straightforward baseline, a loop
of one scipy CG solve per query. Latencies are per query, solve only (the query's own k-NN search, common to
all methods, is timed separately). Memory is the size of what each method keeps resident. The last rows
project 1M from the largest size with each step's complexity (exact k-NN: N^2; CG, spectral, search: N;
truncated: constant), and the measured growth exponents between the two largest sizes are printed to check it.
A last table compares hybrid diffusion (spectral part from the top-r eigenpairs + k CG iterations on the rest)
with plain CG after the same k iterations and with spectral ranking alone (k = 0): per-query time and accuracy
against a converged solve (relative error of the scores, recall of its top-100), where eigenpairs were computed.

    .venv/bin/python benchmarks/diffuse_speed.py                   # 10k and 100k, ~5-8 min on 2 busy cores
    .venv/bin/python benchmarks/diffuse_speed.py --sizes 10000 --queries 50   # quick
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, cg

from retrievalkit.diffusion.cg import cg_solve_torch, sparse_operator
from retrievalkit.diffusion.graph import affinity_from_knn, normalize_symmetric
from retrievalkit.diffusion.hybrid import HybridSolver
from retrievalkit.diffusion.query import query_weights
from retrievalkit.diffusion.spectral import spectral_filter, spectral_rank, top_eigenpairs
from retrievalkit.diffusion.truncated import truncated_solve
from retrievalkit.search.exact import knn_graph, search_ip


def synthetic(n: int, dim: int = 128, per_curve: int = 200, noise: float = 0.05, seed: int = 0):
    """n points along n/per_curve random curves on the sphere (a manifold: neighbours chain along a curve)."""
    rng = np.random.default_rng(seed)
    n_curves = max(1, n // per_curve)
    a = rng.standard_normal((n_curves, dim)).astype(np.float32)
    b = rng.standard_normal((n_curves, dim)).astype(np.float32)
    c = rng.standard_normal((n_curves, dim)).astype(np.float32)
    cid = np.arange(n) % n_curves
    t = rng.random((n, 1)).astype(np.float32)
    x = (1 - t) ** 2 * a[cid] + 2 * t * (1 - t) * c[cid] + t ** 2 * b[cid]
    x += noise * math.sqrt(dim / 16) * rng.standard_normal((n, dim)).astype(np.float32) / math.sqrt(dim / 16)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def run_size(n, args):
    torch.manual_seed(0)
    x = synthetic(n, seed=n)
    rng = np.random.default_rng(1)
    xq = x[rng.choice(n, args.queries, replace=False)]
    xq = xq + 0.02 * rng.standard_normal(xq.shape).astype(np.float32)
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    r = {"n": n}
    (D, I), r["t_knn"] = timed(knn_graph, x, args.k)
    W, t_aff = timed(affinity_from_knn, D, I, 3.0, True)
    S, t_norm = timed(normalize_symmetric, W)
    r["t_graph_rest"] = t_aff + t_norm
    r["nnz"] = S.nnz
    r["mem_graph"] = S.nnz * (4 + 8) + (n + 1) * 8  # torch CSR: f32 values, int64 column ids, int64 row pointers
    # query side: each query's k nearest database items, weights s^gamma (common to cg / spectral / baseline)
    (Dq, Iq), t_q = timed(search_ip, xq, x, max(args.query_k, args.trunc_n))
    r["lat_search"] = t_q / args.queries
    Y = np.zeros((n, args.queries), np.float32)
    Y[Iq[:, :args.query_k].T, np.arange(args.queries)[None, :]] = query_weights(Dq[:, :args.query_k]).T
    op = sparse_operator(S)
    Yt = torch.from_numpy(Y)
    cg_solve_torch(op, Yt[:, :2], 0.99, 2, 1e-6)  # warm-up (thread pools, allocator)
    (_, it), t = timed(cg_solve_torch, op, Yt, 0.99, args.iters, 1e-6)
    r["lat_cg"] = t / args.queries
    r["mem_cg"] = r["mem_graph"] + 5 * n * args.queries * 4 / args.queries  # X, R, P, AP, Y per query column
    # baseline: scipy CG, one query at a time, same iterations and tolerance
    A = LinearOperator(S.shape, matvec=lambda v: v - 0.99 * (S @ v), dtype=np.float32)
    nb = min(args.baseline_queries, args.queries)
    t = time.perf_counter()
    for j in range(nb):
        cg(A, Y[:, j], rtol=1e-6, maxiter=args.iters)
    r["lat_base"] = (time.perf_counter() - t) / nb
    # truncated: subgraph of each query's top-n (n = trunc_n), batched dense CG
    y_local = np.zeros((args.queries, args.trunc_n), np.float32)
    y_local[:, :args.query_k] = query_weights(Dq[:, :args.query_k])
    _, t = timed(truncated_solve, W, Iq[:, :args.trunc_n], y_local, 0.99, args.iters, 1e-6)
    r["lat_trunc"] = t / args.queries
    r["mem_trunc"] = W.nnz * 12 + 12 * W.nnz * args.trunc_n / n  # graph + one query's subgraph
    # spectral: offline eigenpairs (timed), online U h(L) U^T y
    rank = min(args.rank, n - 2)
    if n <= args.eig_max_n:
        (lam, U), r["t_eig"] = timed(top_eigenpairs, S, rank, 1e-3)
    else:  # online cost depends only on U's shape: time it with a random orthonormal basis
        U = np.linalg.qr(rng.standard_normal((n, rank)).astype(np.float32))[0].astype(np.float32)
        lam, r["t_eig"] = np.linspace(1, 0.9, rank), float("nan")
    Ut, ht = torch.from_numpy(U), torch.from_numpy(spectral_filter(lam, 0.99))
    _, t = timed(spectral_rank, Ut, ht, Yt)
    r["lat_spec"] = t / args.queries
    r["mem_spec"] = U.nbytes
    r["rank"] = rank
    r["cg_iters"] = it
    hybrid_rows(r, S, op, U, lam, Yt, n <= args.eig_max_n, args)
    return r


def hybrid_rows(r, S, op, U, lam, Yt, real_eig, args):
    """Hybrid diffusion (spectral part from the top-r eigenpairs + k CG iterations) against cg with k iterations
    and spectral alone: per-query time and accuracy w.r.t. a converged solve (relative error of the scores,
    recall of the reference top-100). Accuracy needs real eigenpairs (sizes up to --eig-max-n)."""
    nq = Yt.shape[1]
    solver = HybridSolver(op, U, lam, 0.99)
    solver(Yt[:, :2], 1)  # warm-up
    ref = None
    if real_eig:
        ref, it_ref = cg_solve_torch(op, Yt, 0.99, args.ref_iters, 1e-7)
        r["ref_iters"] = it_ref
    top = 100

    def accuracy(F):
        if ref is None:
            return float("nan"), float("nan")
        F = F / (1 - 0.99)
        err = float(((F - ref).norm(dim=0) / ref.norm(dim=0)).mean())
        a, b = torch.topk(F, top, dim=0).indices, torch.topk(ref, top, dim=0).indices
        rec = np.mean([len(np.intersect1d(a[:, j].numpy(), b[:, j].numpy())) / top for j in range(nq)])
        return err, float(rec)

    r["hybrid"] = []
    for k in args.hybrid_iters:
        (F_h, _), t_h = timed(solver, Yt, k, 0.0)
        row = {"k": k, "lat_h": t_h / nq, "acc_h": accuracy(F_h)}
        if k > 0:
            (F_c, _), t_c = timed(cg_solve_torch, op, Yt, 0.99, k, 0.0)
            row.update(lat_c=t_c / nq, acc_c=accuracy((1 - 0.99) * F_c))
        r["hybrid"].append(row)


def fmt_t(s):
    return f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.1f} s"


def fmt_b(b):
    return f"{b / 2**20:.0f} MiB" if b >= 2**20 else f"{b / 2**10:.0f} KiB"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--k", type=int, default=50, help="graph neighbours (mutual)")
    ap.add_argument("--query-k", type=int, default=10)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--baseline-queries", type=int, default=10, help="queries timed for the per-query scipy loop")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--trunc-n", type=int, default=1000)
    ap.add_argument("--rank", type=int, default=100, help="spectral eigenpairs")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (1: on a shared, oversubscribed machine spin-waiting threads make "
                         "torch's element-wise ops ~10x slower; raise it on a dedicated machine)")
    ap.add_argument("--eig-max-n", type=int, default=10000,
                    help="compute eigenpairs (Lanczos, tol 1e-3) up to this N; above, only the online step is timed")
    ap.add_argument("--hybrid-iters", default="0,2,5,10,20",
                    help="CG iterations of hybrid diffusion (and of plain cg, for comparison); 0 = spectral alone")
    ap.add_argument("--ref-iters", type=int, default=300, help="iterations of the converged reference solve")
    args = ap.parse_args()
    args.hybrid_iters = [int(k) for k in args.hybrid_iters.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; k={args.k} mutual, gamma=3, "
          f"alpha=0.99, {args.iters} CG iterations, query k={args.query_k}, truncated n={args.trunc_n}, "
          f"spectral rank={args.rank}; {args.queries} queries per batch")
    rows = []
    for n in sizes:
        rows.append(run_size(n, args))
        print(f"  measured N={n} ...", flush=True)
    if rows:  # project 1M from the largest measurement with each step's complexity (growth shown below)
        b = rows[-1]
        f = 10**6 / b["n"]
        proj = {"n": "1M (proj.)", "rank": b["rank"], "cg_iters": b["cg_iters"], "nnz": b["nnz"] * f,
                "t_knn": b["t_knn"] * f ** 2, "t_eig": b["t_eig"] * f if n <= args.eig_max_n else float("nan")}
        for key in ("t_graph_rest", "lat_search", "lat_cg", "lat_base", "lat_spec"):
            proj[key] = b[key] * f  # linear in N (nnz, N x D, N x r)
        proj["lat_trunc"] = b["lat_trunc"]  # independent of N: n x n subgraphs
        for key in ("mem_graph", "mem_cg", "mem_spec"):
            proj[key] = b[key] * f
        proj["mem_trunc"] = b["mem_trunc"] * f
        if len(rows) >= 2:
            a = rows[-2]
            g = math.log(b["n"] / a["n"])
            growth = {key: math.log(b[key] / a[key]) / g for key in
                      ("t_knn", "lat_cg", "lat_base", "lat_trunc", "lat_spec", "lat_search")}
            print("measured growth exponents (time ~ N^e) between the two largest sizes: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in growth.items()))
        rows.append(proj)
    print()
    print("| N | kNN graph | W, S | nnz(S) | eigenpairs (offline) | query k-NN search | batched cg | "
          "scipy CG loop | ratio | truncated | ratio | spectral | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        eig = "not run" if math.isnan(r["t_eig"]) else fmt_t(r["t_eig"])
        print(f"| {r['n']} | {fmt_t(r['t_knn'])} | {fmt_t(r['t_graph_rest'])} | {r['nnz'] / 1e6:.2f}M | "
              f"{eig} (r={r['rank']}) | {fmt_t(r['lat_search'])} | {fmt_t(r['lat_cg'])} | "
              f"{fmt_t(r['lat_base'])} | {r['lat_base'] / r['lat_cg']:.1f}x | {fmt_t(r['lat_trunc'])} | "
              f"{r['lat_base'] / r['lat_trunc']:.1f}x | {fmt_t(r['lat_spec'])} | "
              f"{r['lat_base'] / r['lat_spec']:.0f}x |")
    print()
    print("| N | memory: graph S | cg (graph + 5 vectors/query) | truncated (W + one subgraph) | "
          "spectral U (N x r) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']} | {fmt_b(r['mem_graph'])} | {fmt_b(r['mem_cg'])} | {fmt_b(r['mem_trunc'])} | "
              f"{fmt_b(r['mem_spec'])} |")
    print()
    print("Hybrid (spectral r eigenpairs + k CG iterations on the complement) vs cg with k iterations from zero; "
          "err = mean relative error of the scores to a converged solve, R@100 = recall of its top-100 "
          "(accuracy only where eigenpairs were computed)")
    print("| N | k | hybrid per query | hybrid err | hybrid R@100 | cg per query | cg err | cg R@100 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        for h in r.get("hybrid", []):
            eh, rh = h["acc_h"]
            cells = [f"{fmt_t(h['lat_h'])}", f"{eh:.2e}", f"{rh:.3f}"]
            if "lat_c" in h:
                ec, rc = h["acc_c"]
                cells += [fmt_t(h["lat_c"]), f"{ec:.2e}", f"{rc:.3f}"]
            else:
                cells += ["(k = 0: spectral alone)", "", ""]
            print(f"| {r['n']} | {h['k']} | " + " | ".join(cells) + " |")
    print("\nratio = per-query latency of the scipy loop / that method (same iterations, tolerance, graph); "
          "per-query latencies exclude the query's own k-NN search (column 'query k-NN search').")


if __name__ == "__main__":
    main()
