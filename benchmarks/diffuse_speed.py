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

With ``--cg-limit`` it measures only CG against its CPU limit: one sparse x dense product S·P (N x Q block)
alone, on one thread and on ``--product-threads`` row blocks, as time, GFlop/s and GB/s moved (S's values and
column ids once, the block read and written once), next to the machine's copy bandwidth (a 256 MB numpy
copy); then a CG iteration (previous and current implementation, same operator), its ratio to one product
(1.0 = nothing but the product), and whether the top-100 of every query is the same.

    .venv/bin/python benchmarks/diffuse_speed.py --cg-limit --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import math
import os
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


def previous_cg(matvec, Y, alpha, iters, tol, dim=0):
    """The CG recurrence before issue 18 (a fresh tensor for every element-wise step), for comparison."""
    X = torch.zeros_like(Y)
    R = Y.clone()
    P = R.clone()
    rs = (R * R).sum(dim, keepdim=True)
    thresh = (tol * tol) * rs
    one = torch.ones_like(rs)
    it = 0
    for it in range(1, int(iters) + 1):
        if bool((rs <= thresh).all()):
            it -= 1
            break
        AP = P - alpha * matvec(P)
        pap = (P * AP).sum(dim, keepdim=True)
        a = torch.where(pap > 0, rs / torch.where(pap > 0, pap, one), torch.zeros_like(pap))
        X += a * P
        R -= a * AP
        rs_new = (R * R).sum(dim, keepdim=True)
        beta = torch.where(rs > 0, rs_new / torch.where(rs > 0, rs, one), torch.zeros_like(rs))
        P = R + beta * P
        rs = rs_new
    return X, it


def best_of(fn, repeat):
    """Smallest wall time of ``repeat`` calls (a shared machine: the minimum is the least disturbed run)."""
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return min(ts), out


def copy_bandwidth(mb=256, repeat=5):
    """GB/s of a plain numpy copy (read + write) of ``mb`` MB: the memory limit of a streaming kernel."""
    a = np.ones(mb * 2**20 // 4, np.float32)
    b = np.empty_like(a)
    t, _ = best_of(lambda: np.copyto(b, a), repeat)
    return 2 * a.nbytes / t / 1e9


def cg_limit(sizes, args):
    """CG per iteration against one S·P product (the part no element-wise fusion can remove)."""

    bw = copy_bandwidth()
    print(f"copy bandwidth (256 MB numpy copy, best of 5): {bw:.1f} GB/s; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs; torch threads {torch.get_num_threads()}, product threads "
          f"{args.product_threads}; Q = {args.queries} columns, {args.iters} iterations")
    print("| N | nnz(S) | S·P 1 thread | GFlop/s | GB/s | S·P threaded | speed-up | previous cg / iter | "
          "cg / iter (1-thread S·P) | cg / iter (threaded S·P) | iter / S·P | speed-up vs previous | "
          "element-wise / iter, previous | element-wise / iter | speed-up | top-100 same | max rel. diff |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        cg_limit_row(n, args)
    print("iter / S·P: a CG iteration (threaded product) over one threaded product alone; 1.0 is the limit "
          "(every element-wise step free). GB/s counts S (4-byte values, 4-byte column ids) and the block read "
          "and written once each; compare with the copy bandwidth above. top-100 same: share of (query, "
          "implementation) pairs whose top-100 equals the previous implementation's; max rel. diff: largest score "
          "difference to it over the largest score. element-wise: the iteration with a free product.")


def cg_limit_row(n, args):
    from retrievalkit.diffusion.cg import conjugate_gradient

    x = synthetic(n, seed=n)
    D, I = knn_graph(x, args.k)
    S = normalize_symmetric(affinity_from_knn(D, I, 3.0, True))
    rng = np.random.default_rng(1)
    Y = np.zeros((n, args.queries), np.float32)
    Y[rng.integers(0, n, (args.query_k, args.queries)), np.arange(args.queries)[None, :]] = 1.0
    op1 = sparse_operator(S, threads=1)
    opt = sparse_operator(S, threads=args.product_threads)
    Yi = op1.to_internal(torch.from_numpy(Y))
    op1(Yi), opt(Yi)  # warm-up
    rep = args.repeat
    t1, _ = best_of(lambda: op1(Yi), rep)
    tt, _ = best_of(lambda: opt(Yi), rep)
    tp, (Fp, itp) = best_of(lambda: previous_cg(op1, Yi, 0.99, args.iters, 0.0), rep)
    tn, (Fn, itn) = best_of(lambda: conjugate_gradient(op1, Yi, 0.99, args.iters, 0.0), rep)
    tnt, (Fnt, _) = best_of(lambda: conjugate_gradient(opt, Yi, 0.99, args.iters, 0.0), rep)
    assert itp == itn == args.iters
    # the element-wise part alone: the same recurrences with a product that costs nothing (a fixed block)
    SP = op1(Yi)
    te_p, _ = best_of(lambda: previous_cg(lambda P: SP, Yi, 0.99, args.iters, 0.0), rep)
    te_n, _ = best_of(lambda: conjugate_gradient(lambda P: SP, Yi, 0.99, args.iters, 0.0), rep)
    rel = max(float((F - Fp).abs().max() / Fp.abs().max()) for F in (Fn, Fnt))
    flops = 2 * S.nnz * args.queries
    moved = S.nnz * 8 + 2 * n * args.queries * 4
    same = np.mean([np.array_equal(torch.topk(Fp[:, j], 100).indices.numpy(),
                                   torch.topk(F[:, j], 100).indices.numpy())
                    for F in (Fn, Fnt) for j in range(args.queries)])
    per = [t / args.iters for t in (tp, tn, tnt)]
    print(f"| {n} | {S.nnz / 1e6:.2f}M | {fmt_t(t1)} | {flops / t1 / 1e9:.1f} | {moved / t1 / 1e9:.1f} | "
          f"{fmt_t(tt)} | {t1 / tt:.2f}x | {fmt_t(per[0])} | {fmt_t(per[1])} | {fmt_t(per[2])} | "
          f"{per[2] / tt:.2f} | {per[0] / per[2]:.2f}x | {fmt_t(te_p / args.iters)} | "
          f"{fmt_t(te_n / args.iters)} | {te_p / te_n:.2f}x | {same:.3f} | {rel:.1e} |", flush=True)


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
    ap.add_argument("--cg-limit", action="store_true", help="only CG against one S·P product (see above)")
    ap.add_argument("--product-threads", type=int, default=os.cpu_count() or 1,
                    help="row-block threads of the threaded S·P (rkit uses torch's thread count, --threads)")
    ap.add_argument("--repeat", type=int, default=5, help="--cg-limit: timed runs of each step (best shown)")
    args = ap.parse_args()
    args.hybrid_iters = [int(k) for k in args.hybrid_iters.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    torch.set_num_threads(args.threads)
    if args.cg_limit:
        cg_limit(sizes, args)
        return
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
