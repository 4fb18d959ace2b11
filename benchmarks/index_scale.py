# ruff: noqa: E741  (faiss naming: D distances, I ids)
"""Built faiss indexes against exact search on synthetic clustered vectors (128-D, float32), side by side.

The features file is written in blocks (never the whole matrix in memory); each index is then built by the real
command (`python -m retrievalkit index build`, one child process per index so its peak RSS is its own; the peak RSS
of `rkit --version` is printed as the baseline). Search runs in this process: the index is
loaded, then all queries are searched in one block (CPU time per query, single thread; CPU rather than wall
time because the machine is shared), optionally
re-ranked exactly from the features file (`--shortlist`). recall@10 is against the exact top-10 (streamed exact
search). Queries are noisy copies of random database vectors.

    .venv/bin/python benchmarks/index_scale.py                      # 200k x 128, ~5-10 min on 2 busy cores
    .venv/bin/python benchmarks/index_scale.py --n 50000 --queries 200   # quick
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from retrievalkit.io.features import FeaturesWriter  # noqa: E402
from retrievalkit.io.features_stream import FeaturesStream  # noqa: E402
from retrievalkit.io.index import read_index_file  # noqa: E402
from retrievalkit.search import faiss_index as fx  # noqa: E402


def write_clustered(path: Path, n: int, dim: int, block: int, seed: int = 0, n_clusters: int = 1000) -> np.ndarray:
    """n unit vectors around n_clusters random centres, written block by block. Returns the centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    with FeaturesWriter(path, dim, {"synthetic": "clustered", "n": n, "dim": dim}) as w:
        for s in range(0, n, block):
            b = min(block, n - s)
            x = centres[rng.integers(0, n_clusters, b)] + 0.08 * rng.standard_normal((b, dim)).astype(np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            w.append([f"synthetic/{i:08d}" for i in range(s, s + b)], x)
        w.finish()
    return centres


def exact_topk(fs: FeaturesStream, xq: np.ndarray, k: int, block: int) -> np.ndarray:
    import faiss

    best = None
    for s, xb in fs.blocks(block):
        d, i = faiss.knn(xq, xb, min(k, len(xb)), metric=faiss.METRIC_INNER_PRODUCT)
        cur = (d, i + s)
        best = cur if best is None else fx.merge_topk([best, cur], k)
    return best[1]


_PEAK = ("import runpy, sys\n"
         "sys.argv = sys.argv[1:]\n"
         "try:\n"
         "    runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
         "except SystemExit as e:\n"
         "    code = e.code\n"
         "else:\n"
         "    code = 0\n"
         "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
         "sys.stderr.write(f'PEAK_KB {hwm}\\n')\n"
         "sys.exit(code)\n")


def child_rss(cmd: list[str], env: dict) -> tuple[float, float]:
    """Run ``python -m MODULE ARGS`` (``cmd`` = [python, "-m", MODULE, ...]); return (CPU seconds, peak RSS in MiB).

    Peak RSS is the child's own VmHWM (read in the child at exit): the rusage of a forked child would include the
    parent's memory at fork time. CPU time, not wall: one thread, so it is the wall time on an idle core, and it
    does not depend on how busy the shared machine is."""
    if cmd[1] == "-m":
        cmd = [cmd[0], "-c", _PEAK, *cmd[2:]]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read()
    _, status, ru = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{err}")
    peak = [line for line in err.splitlines() if line.startswith("PEAK_KB")]
    return ru.ru_utime + ru.ru_stime, int(peak[-1].split()[1]) / 1024 if peak else float("nan")


def recall_at(I: np.ndarray, gt: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(a[:k]) & set(b[:k])) / k for a, b in zip(I, gt)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--nlist", type=int, default=512)
    ap.add_argument("--pq", type=int, default=32, help="PQ bytes per vector")
    ap.add_argument("--train-size", type=int, default=25_000)
    ap.add_argument("--block-size", type=int, default=20_000, help="rows per block (build and data generation)")
    ap.add_argument("--nprobe", type=int, default=16)
    ap.add_argument("--ef", type=int, default=64)
    ap.add_argument("--shortlist", type=int, default=100)
    ap.add_argument("--rows", default="flat,ivf,pq,opq,hnsw", help="which indexes (comma-separated keys)")
    ap.add_argument("--workdir", type=Path, default=None, help="where the files go (default: a temporary folder)")
    args = ap.parse_args()

    import faiss

    faiss.omp_set_num_threads(1)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="rkit-index-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    feats = work / "db.h5"
    t0 = time.process_time()
    centres = write_clustered(feats, args.n, args.dim, args.block_size)
    gen_s = time.process_time() - t0
    rng = np.random.default_rng(1)
    matrix_mib = args.n * args.dim * 4 / 2**20
    with FeaturesStream(feats) as fs:
        ids = np.sort(rng.choice(args.n, args.queries, replace=False))
        xq = fs.take(ids) + 0.03 * rng.standard_normal((args.queries, args.dim)).astype(np.float32)
        xq /= np.linalg.norm(xq, axis=1, keepdims=True)
        t = time.process_time()
        gt = exact_topk(fs, xq, 10, args.block_size)
        exact_s = time.process_time() - t
    del centres
    print(f"data: {args.n} x {args.dim} float32 ({matrix_mib:.0f} MiB) written in {gen_s:.1f} s in blocks of "
          f"{args.block_size}; {args.queries} queries; streamed exact top-10 in {exact_s:.1f} s", file=sys.stderr)

    base_cmd = [sys.executable, "-m", "retrievalkit", "--version"]
    _, base_rss = child_rss(base_cmd, env)

    nl, m = args.nlist, args.pq
    rows = {  # key: label, factory, search settings
        "flat": ("Flat (exact)", "Flat", {}),
        "ivf": (f"IVF{nl},Flat", f"IVF{nl},Flat", {"nprobe": args.nprobe}),
        "pq": (f"IVF{nl},PQ{m}", f"IVF{nl},PQ{m}", {"nprobe": args.nprobe}),
        "opq": (f"OPQ{m},IVF{nl},PQ{m}", f"OPQ{m},IVF{nl},PQ{m}", {"nprobe": args.nprobe}),
        "hnsw": ("HNSW32", "HNSW32", {"ef": args.ef}),
    }
    rows = [rows[key] for key in args.rows.split(",")]
    table = []
    for label, factory, params in rows:
        out = work / f"{factory.replace(',', '_')}.h5"
        cmd = [sys.executable, "-m", "retrievalkit", "-q", "index", "build", str(feats), "-o", str(out),
               "--factory", factory, "--train-size", str(args.train_size), "--block-size", str(args.block_size)]
        build_s, rss = child_rss(cmd, env)
        size_mib = out.stat().st_size / 2**20
        index = fx.deserialize(read_index_file(out).data)
        fx.set_search_params(index, params.get("nprobe"), params.get("ef"), 10)
        shortlists = [None, args.shortlist] if factory != "Flat" else [None]
        for sl in shortlists:
            k_search = sl or 10
            t = time.process_time()
            D, I = fx.search_blocks(index, xq, k_search, block_size=len(xq))
            search_s = time.process_time() - t
            rr_s = 0.0
            if sl:
                with FeaturesStream(feats) as fs:
                    t = time.process_time()
                    D, I = fx.rerank(xq, I, fs.take, 10)
                    rr_s = time.process_time() - t
            name = label + (f" + shortlist {sl}" if sl else "")
            setting = ", ".join(f"{k}={v}" for k, v in params.items()) or "-"
            table.append((name, setting, build_s, size_mib, rss, recall_at(I, gt, 1), recall_at(I, gt, 10),
                          1000 * (search_s + rr_s) / len(xq), 1000 * rr_s / len(xq)))
        del index
        print(f"done {label}", file=sys.stderr)

    print(f"\nN={args.n} D={args.dim} ({matrix_mib:.0f} MiB as float32), {args.queries} queries, 1 thread, "
          f"train {args.train_size}, build blocks of {args.block_size} rows; baseline child RSS {base_rss:.0f} MiB")
    hdr = ("index", "search", "build CPU s", "file MiB", "build peak RSS MiB", "R@1", "R@10", "CPU ms/query",
           "of which re-rank")
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for r in table:
        print(f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.1f} | {r[4]:.0f} | {r[5]:.3f} | {r[6]:.3f} | {r[7]:.3f} | "
              f"{r[8]:.3f} |")
    print(f"(peak RSS of `rkit --version` in a child: {base_rss:.0f} MiB; the matrix alone: "
          f"{matrix_mib:.0f} MiB; this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")


# ------------------------------------------------------------------------------------------------ scale mode

def cpu_of(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """(CPU s, peak RSS MiB, stderr) of one ``python -m retrievalkit ...`` child."""
    proc = subprocess.Popen([cmd[0], "-c", _PEAK, *cmd[2:]], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read()
    _, status, ru = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{err}")
    peak = [line for line in err.splitlines() if line.startswith("PEAK_KB")]
    return ru.ru_utime + ru.ru_stime, int(peak[-1].split()[1]) / 1024 if peak else float("nan"), err


def recall_k(I: np.ndarray, gt: np.ndarray, k: int) -> float:
    """|top-k ∩ exact top-k| / k, averaged over queries."""
    hit = (I[:, :k, None] == gt[:, None, :k]).any(2)
    return float(hit.sum(1).mean() / k)


def data_file(work: Path, n: int, dim: int, block: int) -> Path:
    path = work / f"clustered_{n}x{dim}.h5"
    if not path.exists():
        write_clustered(path, n, dim, block)
    return path


def scale_main(args) -> None:
    """Build every factory with the real command (train, then add, one child each), search in this process."""
    import faiss

    faiss.omp_set_num_threads(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=str(ROOT))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="rkit-index-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    rkit = [sys.executable, "-m", "retrievalkit", "--threads", str(args.threads), "-q"]
    n, dim, nq = args.n, args.dim, args.queries
    feats = data_file(work, n, dim, args.block_size)
    rng = np.random.default_rng(1)
    with FeaturesStream(feats) as fs:
        ids = np.sort(rng.choice(n, nq, replace=False))
        xq = fs.take(ids) + 0.03 * rng.standard_normal((nq, dim)).astype(np.float32)
        xq /= np.linalg.norm(xq, axis=1, keepdims=True)
        t = time.process_time()
        gt = exact_topk(fs, xq, 100, args.block_size)
        exact_s = time.process_time() - t
    _, base_rss, _ = cpu_of([*rkit[:2], "retrievalkit", "--version"], env)
    nl, m = args.nlist, args.pq
    factories = {"flat": "Flat", "ivf": f"IVF{nl},Flat", "pq": f"IVF{nl},PQ{m}", "opq": f"OPQ{m},IVF{nl},PQ{m}",
                 "hnsw": "HNSW32", "pqfs": f"IVF{nl},PQ{m}x4fs"}
    print(f"# N={n} D={dim} clustered synthetic ({n * dim * 4 / 2**20:.0f} MiB float32), {nq} queries, "
          f"{args.threads} thread(s), train {args.train_size}, blocks of {args.block_size}; search CPU time best of "
          f"{args.repeats}; exact top-100 of the "
          f"queries streamed in {exact_s:.1f} CPU s; `rkit --version` peak RSS {base_rss:.0f} MiB", flush=True)
    hdr = ("index", "search", "train CPU s", "add CPU s", "add vec/s", "build peak RSS MiB", "B/vector",
           "QPS (1 query)", "QPS (1000)", "× flat", "R@1", "R@10", "R@100")
    print("| " + " | ".join(hdr) + " |\n|" + "---|" * len(hdr), flush=True)
    flat_qps = None
    for key in args.rows.split(","):
        factory = factories[key]
        tag = factory.replace(",", "_")
        trained, out = work / f"{tag}.{n}.trained.h5", work / f"{tag}.{n}.h5"
        train_s, _, _ = cpu_of([*rkit, "index", "build", str(feats), "-o", str(trained), "--factory", factory,
                                "--train-size", str(args.train_size), "--block-size", str(args.block_size),
                                "--train-only"], env)
        add_s, rss, _ = cpu_of([*rkit, "index", "build", str(feats), "-o", str(out), "--trained", str(trained),
                                "--block-size", str(args.block_size)], env)
        data = read_index_file(out).data
        bpv = data.nbytes / n
        index = fx.deserialize(data)
        del data
        fam = fx.family(index)
        settings = ([{"nprobe": p} for p in args.nprobe_list] if fam == "ivf" else
                    [{"ef": e} for e in args.ef_list] if fam == "hnsw" else [{}])
        for par in settings:
            fx.set_search_params(index, par.get("nprobe"), par.get("ef"), 100)
            for sl in ([None] if factory == "Flat" else [None, *args.shortlists]):
                k_search = max(100, sl or 0)
                one = xq[:args.single]
                single_s = batch_s = float("inf")
                with FeaturesStream(feats) as fs:  # opened once, as `rkit index search --shortlist` does
                    fs.take(np.array([0]))
                    for _ in range(args.repeats):  # best of: the machine is shared
                        t = time.process_time()
                        for i in range(len(one)):
                            d1, i1 = index.search(one[i:i + 1], k_search)
                            if sl:
                                fx.rerank(one[i:i + 1], i1, fs.take, 100)
                        single_s = min(single_s, (time.process_time() - t) / len(one))
                        t = time.process_time()
                        D, I = fx.search_blocks(index, xq, k_search, block_size=nq)
                        if sl:
                            D, I = fx.rerank(xq, I, fs.take, 100)
                        batch_s = min(batch_s, (time.process_time() - t) / nq)
                qps = 1 / batch_s
                if factory == "Flat":
                    flat_qps = qps
                name = factory + (f" + shortlist {sl}" if sl else "")
                st = ", ".join(f"{a}={b}" for a, b in par.items()) or "-"
                speed = f"{qps / flat_qps:.1f}" if flat_qps else "-"
                print(f"| {name} | {st} | {train_s:.1f} | {add_s:.1f} | {n / add_s:,.0f} | {rss:.0f} | {bpv:.1f} | "
                      f"{1 / single_s:,.0f} | {qps:,.0f} | {speed} | {recall_k(I, gt, 1):.3f} | "
                      f"{recall_k(I, gt, 10):.3f} | {recall_k(I, gt, 100):.3f} |", flush=True)
        del index
        for f in (trained, out):
            f.unlink(missing_ok=True)


def knn_main(args) -> None:
    """Approximate kNN graph (rkit index knn --factory) against the exact graph (rkit index knn) by size."""
    import h5py

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=str(ROOT))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="rkit-index-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    rkit = [sys.executable, "-m", "retrievalkit", "--threads", str(args.threads), "-q"]
    k = args.knn_k
    print(f"# kNN graph, k={k}, clustered synthetic D={args.dim}, {args.threads} thread(s); CPU s of the whole "
          "command (child process); recall@k of the approximate graph against the exact one", flush=True)
    hdr = ("N", "graph", "CPU s", "peak RSS MiB", "recall@k (all rows, vs exact graph)",
           "recall@k (command's 1000-row sample)")
    print("| " + " | ".join(hdr) + " |\n|" + "---|" * len(hdr), flush=True)
    for n in args.knn_sizes:
        feats = data_file(work, n, args.dim, args.block_size)
        exact = work / f"knn_exact_{n}.h5"
        ex_I = None
        if n <= args.exact_max:
            cpu, rss, _ = cpu_of([*rkit, "index", "knn", str(feats), "-o", str(exact), "-k", str(k)], env)
            with h5py.File(exact, "r") as f:
                ex_I = f["indices"][:]
            print(f"| {n:,} | exact | {cpu:.1f} | {rss:.0f} | 1 | - |", flush=True)
        for factory in args.knn_factories:
            nl = fx.default_nlist(n)
            fac = factory.replace("{nlist}", str(nl))
            out = work / f"knn_{fac.replace(',', '_')}_{n}.h5"
            cmd = [*rkit, "index", "knn", str(feats), "-o", str(out), "-k", str(k), "--factory", fac,
                   "--recall-sample", "1000"]
            if "IVF" in fac:
                cmd += ["--nprobe", str(args.knn_nprobe), "--train-size", str(min(n, 50 * nl))]
            cpu, rss, _ = cpu_of(cmd, env)
            with h5py.File(out, "r") as f:
                I = f["indices"][:]
                import json

                sample = json.loads(f.attrs["config"]).get("recall_at_k")
            full = "-"
            if ex_I is not None:
                full = f"{recall_k(I, ex_I, k):.4f}"
            par = f" nprobe={args.knn_nprobe}" if "IVF" in fac else ""
            print(f"| {n:,} | {fac}{par} | {cpu:.1f} | {rss:.0f} | {full} | {sample:.4f} |", flush=True)
            out.unlink(missing_ok=True)
        exact.unlink(missing_ok=True)


def real_main(args) -> None:
    """Exact search against built indexes (with and without re-ranking) on real features: mAP by rkit evaluate."""
    import json

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=str(ROOT))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="rkit-index-real-"))
    work.mkdir(parents=True, exist_ok=True)
    rkit = [sys.executable, "-m", "retrievalkit", "--threads", str(args.threads), "-q"]
    db, q, gnd = args.real
    with FeaturesStream(db) as fs:
        n = fs.n

    def run(*a: str) -> str:
        p = subprocess.run([*rkit, *map(str, a)], env=env, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"failed: rkit {' '.join(map(str, a))}\n{p.stderr}")
        return p.stdout

    def mean_ap(ranks: Path) -> dict:
        out = json.loads(run("evaluate", ranks, "--gnd", gnd))["map"]
        return {key: v for key, v in out.items() if v is not None}

    rows = []
    run("index", "search", "--database", db, "--queries", q, "-o", work / "exact.h5", "-k", n)
    rows.append(("exact (all ranked)", "-", mean_ap(work / "exact.h5")))
    for sl in args.shortlists:  # the same truncation as a re-ranked shortlist: only the top sl are ranked
        run("index", "search", "--database", db, "--queries", q, "-o", work / "exact_k.h5", "-k", sl)
        rows.append((f"exact, top {sl} ranked", "-", mean_ap(work / "exact_k.h5")))
    for factory in args.real_factories:
        idx = work / f"{factory.replace(',', '_')}.h5"
        run("index", "build", db, "-o", idx, "--factory", factory)
        for nprobe in args.nprobe_list:
            par = ["--nprobe", nprobe] if "IVF" in factory else []
            r = work / "r.h5"
            run("index", "search", "--queries", q, "--index", idx, "-o", r, "-k", n, *par)
            rows.append((factory, f"nprobe={nprobe}", mean_ap(r)))
            for sl in args.shortlists:
                run("index", "search", "--database", db, "--queries", q, "--index", idx, "-o", r, "-k", sl,
                    "--shortlist", sl, *par)
                rows.append((f"{factory} + shortlist {sl}", f"nprobe={nprobe}", mean_ap(r)))
            if "IVF" not in factory:
                break
    keys = list(rows[0][2])
    print(f"# {db} ({n} vectors) / {q} / {gnd}: mAP (%) by rkit evaluate")
    print("| index | search | " + " | ".join(f"mAP {k}" for k in keys) + " | Δ medium vs exact |")
    print("|---|---|" + "---|" * (len(keys) + 1))
    ref = rows[0][2].get("medium", next(iter(rows[0][2].values())))
    for name, st, m in rows:
        med = m.get("medium", next(iter(m.values())))
        print(f"| {name} | {st} | " + " | ".join(f"{m[k]:.2f}" for k in keys) + f" | {med - ref:+.2f} |")


def cli() -> None:
    if "--real" in sys.argv:
        ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        ap.add_argument("--real", nargs=3, type=Path, metavar=("DB", "Q", "GND"), required=True)
        ap.add_argument("--real-factories", type=lambda v: v.split(";"), default=["IVF16,PQ64"])
        ap.add_argument("--nprobe", dest="nprobe_list", type=lambda v: [int(x) for x in v.split(",")],
                        default=[4, 16])
        ap.add_argument("--shortlist", dest="shortlists", type=lambda v: [int(x) for x in v.split(",")],
                        default=[100])
        ap.add_argument("--threads", type=int, default=1)
        ap.add_argument("--workdir", type=Path, default=None)
        real_main(ap.parse_args())
        return
    if "--scale" in sys.argv or "--knn" in sys.argv:
        ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        ap.add_argument("--scale", action="store_true", help="build/search table of every factory")
        ap.add_argument("--knn", action="store_true", help="kNN-graph recall and cost by size")
        ap.add_argument("--n", type=int, default=100_000)
        ap.add_argument("--dim", type=int, default=128)
        ap.add_argument("--queries", type=int, default=1000)
        ap.add_argument("--single", type=int, default=200, help="queries searched one at a time (QPS at 1)")
        ap.add_argument("--nlist", type=int, default=1024)
        ap.add_argument("--pq", type=int, default=32)
        ap.add_argument("--train-size", type=int, default=50_000)
        ap.add_argument("--block-size", type=int, default=65536)
        ap.add_argument("--nprobe", dest="nprobe_list", type=lambda v: [int(x) for x in v.split(",")],
                        default=[16, 64])
        ap.add_argument("--ef", dest="ef_list", type=lambda v: [int(x) for x in v.split(",")], default=[128])
        ap.add_argument("--shortlist", dest="shortlists", type=lambda v: [int(x) for x in v.split(",")],
                        default=[100])
        ap.add_argument("--rows", default="flat,ivf,pq,opq,hnsw")
        ap.add_argument("--repeats", type=int, default=3, help="searches timed, best kept")
        ap.add_argument("--threads", type=int, default=1)
        ap.add_argument("--knn-sizes", type=lambda v: [int(x) for x in v.split(",")],
                        default=[10_000, 100_000, 1_000_000])
        ap.add_argument("--knn-k", type=int, default=50)
        ap.add_argument("--knn-factories", type=lambda v: v.split(";"), default=["IVF{nlist},Flat"])
        ap.add_argument("--knn-nprobe", type=int, default=16)
        ap.add_argument("--exact-max", type=int, default=100_000, help="exact graph only up to this N")
        ap.add_argument("--workdir", type=Path, default=None)
        args = ap.parse_args()
        if args.scale:
            scale_main(args)
        if args.knn:
            knn_main(args)
        return
    main()


if __name__ == "__main__":
    cli()
