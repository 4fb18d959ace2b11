# ruff: noqa: E741  (faiss naming: D distances, I ids)
"""Start-up time of the `rkit` command: every sub-command's `--help`, a trivial run, and `index search` against
a bare faiss script.

Every figure is the wall time of a fresh process (interpreter start included), median of ``--repeats`` runs
with the min–max spread. Reference rows: ``python -c pass`` and ``python -c "import torch"`` / ``"import faiss"``
(what a command pays if it loads them). Last table: ``rkit index search`` (5k queries × 50k database × 512-D,
k=100, generated in a temp folder) against a script making the same calls (h5py read, ``faiss.IndexFlatIP``
add + blocked search, h5py write) on the same files, runs alternated; ratio = rkit / bare.

    .venv/bin/python benchmarks/cli_startup.py                  # ~3 min on 2 busy cores
    .venv/bin/python benchmarks/cli_startup.py --repeats 3 --queries 1000 --database 10000   # quick
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = [["extract"], ["merge"], ["whiten", "learn"], ["whiten", "apply"], ["index", "search"], ["index", "knn"],
            ["index", "fuse"], ["index", "asmk"], ["index", "search-asmk"], ["index", "build"], ["index", "merge"],
            ["diffuse"], ["diffuse-prepare"],
            ["propagate"], ["evaluate"], ["sfm-mine"], ["manifold-mine"], ["verify"], ["copy-detect"], ["show"],
            ["train", "run"], ["train", "import-cirtorch"]]

BARE = """
import sys
import h5py, numpy as np, faiss
db, q, out, k, block = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
with h5py.File(db, "r") as f:
    xb = f["vectors"][:]
with h5py.File(q, "r") as f:
    xq = f["vectors"][:]
index = faiss.IndexFlatIP(xb.shape[1])
index.add(xb)
D = np.empty((len(xq), k), np.float32)
I = np.empty((len(xq), k), np.int64)
for s in range(0, len(xq), block):
    D[s:s + block], I[s:s + block] = index.search(xq[s:s + block], k)
with h5py.File(out + ".tmp", "w") as f:
    f["scores"], f["indices"] = D, I
import os
os.replace(out + ".tmp", out)
"""


BARE_KNN = """
import sys
import h5py, numpy as np, faiss
db, out, k, block = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with h5py.File(db, "r") as f:
    xb = f["vectors"][:]
n = len(xb)
index = faiss.IndexFlatIP(xb.shape[1])
index.add(xb)
D = np.empty((n, k + 1), np.float32)
I = np.empty((n, k + 1), np.int64)
for s in range(0, n, block):
    D[s:s + block], I[s:s + block] = index.search(xb[s:s + block], k + 1)
drop = I == np.arange(n)[:, None]
drop[~drop.any(1), -1] = True
D, I = D[~drop].reshape(n, k), I[~drop].reshape(n, k)
with h5py.File(out + ".tmp", "w") as f:
    f["scores"], f["indices"] = D, I
import os
os.replace(out + ".tmp", out)
"""


def wall(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return dt


def stats(times: list[float]) -> str:
    return f"{statistics.median(times):7.3f} s  ({min(times):.3f}–{max(times):.3f})"


def write_feats(path: Path, n: int, dim: int, seed: int) -> None:
    from retrievalkit.io import Features, write_features

    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    write_features(path, Features([f"img{i:06d}.jpg" for i in range(n)], x))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--queries", type=int, default=5000)
    ap.add_argument("--database", type=int, default=50000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1, help="OMP/MKL threads of every process (default 1).")
    ap.add_argument("--knn-database", type=int, default=50000, help="index knn: database rows (0: skip).")
    ap.add_argument("--knn-k", type=int, default=50)
    ap.add_argument("--only-ratios", action="store_true", help="skip the start-up tables")
    args = ap.parse_args()
    py = sys.executable
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=str(args.threads),
               MKL_NUM_THREADS=str(args.threads))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # start-up is measured with compiled modules, as installed
    rkit = [py, "-m", "retrievalkit"]
    r = args.repeats

    if args.only_ratios:
        return ratios(args, env, rkit)
    print(f"# start-up, fresh process each run, median of {r} (min–max); {args.threads} thread(s); "
          f"python {sys.version.split()[0]}")
    print(f"{'what':44s} {'wall time':>28s}")
    ref = {}
    for label, cmd in [("python -c pass", [py, "-c", "pass"]),
                       ("python -c 'import faiss'", [py, "-c", "import faiss"]),
                       ("python -c 'import torch'", [py, "-c", "import torch"]),
                       ("rkit --help", [*rkit, "--help"])]:
        ref[label] = [wall(cmd, env) for _ in range(r)]
        print(f"{label:44s} {stats(ref[label]):>28s}")
    for c in COMMANDS:
        times = [wall([*rkit, *c, "--help"], env) for _ in range(r)]
        print(f"{'rkit ' + ' '.join(c) + ' --help':44s} {stats(times):>28s}")

    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        write_feats(t / "db1k.h5", 1000, 128, 1)
        write_feats(t / "q1k.h5", 100, 128, 2)
        times = [wall([*rkit, "-q", "index", "search", "--database", str(t / "db1k.h5"), "--queries",
                       str(t / "q1k.h5"), "-o",
                       str(t / "r1k.h5"), "-k", "10"], env) for _ in range(r)]
        print(f"{'rkit index search (1k × 128, 100 queries)':44s} {stats(times):>28s}")
    ratios(args, env, rkit)


def wall_cpu(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall s, CPU s = user + system of the child) of one fresh process."""
    import resource

    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    dt = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return dt, (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)


def paired(cmd_a: list[str], cmd_b: list[str], env: dict, r: int, label: str) -> None:
    """Alternated runs of two commands; medians, spread and the per-pair ratio a / b, of the wall time and of
    the CPU time (user + system; with one thread it does not grow when other jobs share the cores)."""
    a, b = [], []
    for _ in range(r):
        a.append(wall_cpu(cmd_a, env))
        b.append(wall_cpu(cmd_b, env))
    for j, what in ((0, "wall"), (1, "CPU")):
        x, y = [v[j] for v in a], [v[j] for v in b]
        ratios = [p / q for p, q in zip(x, y)]
        print(f"{label + ' (' + what + ')':44s} {stats(x):>28s}")
        print(f"{'bare faiss script (' + what + ')':44s} {stats(y):>28s}")
        print(f"{'ratio rkit / bare, ' + what + ' (per pair)':44s} {statistics.median(ratios):7.3f}×   "
              f"({min(ratios):.3f}–{max(ratios):.3f})")


def ratios(args, env: dict, rkit: list[str]) -> None:
    """Whole commands against bare faiss scripts making the same calls on the same files."""
    import h5py

    py, r = sys.executable, args.repeats
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        print()
        print(f"# index search, {args.queries} queries × {args.database} database × {args.dim}-D, k=100, "
              f"block 4096: whole command vs bare faiss script on the same files, runs alternated")
        write_feats(t / "db.h5", args.database, args.dim, 3)
        write_feats(t / "q.h5", args.queries, args.dim, 4)
        cmd_rkit = [*rkit, "-q", "index", "search", "--database", str(t / "db.h5"), "--queries", str(t / "q.h5"),
                    "-o", str(t / "r.h5"), "-k", "100", "--block-size", "4096"]
        cmd_bare = [py, "-c", BARE, str(t / "db.h5"), str(t / "q.h5"), str(t / "bare.h5"), "100", "4096"]
        paired(cmd_rkit, cmd_bare, env, r, "rkit index search")
        with h5py.File(t / "r.h5", "r") as f, h5py.File(t / "bare.h5", "r") as g:
            same = np.array_equal(f["indices"][:], g["indices"][:])
        print(f"{'same neighbours as the bare script':44s} {str(same):>28s}")
        if not args.knn_database:
            return
        n, k = args.knn_database, args.knn_k
        print()
        print(f"# index knn, {n} × {args.dim}-D, k={k}, block 4096: whole command vs bare faiss script (h5py read, "
              "IndexFlatIP add + blocked search of k+1, self dropped, h5py write), runs alternated")
        db = t / "db.h5" if n == args.database else t / "knn_db.h5"
        if n != args.database:
            write_feats(db, n, args.dim, 5)
        cmd_rkit = [*rkit, "-q", "index", "knn", str(db), "-o", str(t / "knn.h5"), "-k", str(k),
                    "--block-size", "4096"]
        cmd_bare = [py, "-c", BARE_KNN, str(db), str(t / "bare_knn.h5"), str(k), "4096"]
        paired(cmd_rkit, cmd_bare, env, r, "rkit index knn")
        with h5py.File(t / "knn.h5", "r") as f, h5py.File(t / "bare_knn.h5", "r") as g:
            same = np.array_equal(f["indices"][:], g["indices"][:])
        print(f"{'same neighbours as the bare script':44s} {str(same):>28s}")


if __name__ == "__main__":
    main()
