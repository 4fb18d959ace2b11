# ruff: noqa: E741  (faiss naming: D distances, I ids)
"""Start-up time of the `rkit` command: every sub-command's `--help`, trivial runs, and `index search` /
`index knn` against bare faiss scripts.

Every figure is the wall time (and, in the last tables, the CPU time) of a fresh process, interpreter start
included, median of ``--repeats`` runs with the min–max spread. Reference rows: ``python -c pass``,
``python -c "import torch"`` / ``"import faiss"`` / ``"import h5py, numpy, faiss"`` (what a command pays if it
loads them; the last is the bare scripts' own imports, the floor of a faiss command) and ``import typer`` (the
command-line library every rkit command loads). Then the fixed cost of a run (a 100-query search, CPU time,
against the bare script and the bare script plus ``import typer``). Last tables: ``rkit index search`` (5k
queries × 50k database × 512-D, k=100, generated in a temp folder) and ``rkit index knn`` (50k × 512-D, k=50)
against scripts making the same calls (h5py read, ``faiss.IndexFlatIP`` add + blocked search, h5py write) on
the same files, runs alternated; ratio = rkit / bare, per pair.

``--baseline DIR``: another source tree of rkit (e.g. ``git worktree add ../rkit-main main``) runs in the same
alternation, so one run shows before and after side by side; its rows say ``(baseline)``.

    python benchmarks/cli_startup.py                  # ~3 min on 2 busy cores
    python benchmarks/cli_startup.py --repeats 3 --queries 1000 --database 10000   # quick
    python benchmarks/cli_startup.py --only-ratios --repeats 3 --baseline ../rkit-main
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


def wall(cmd: list[str], env: dict, cwd: Path = ROOT) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env)
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


class Rkit:
    """How to start one source tree's ``rkit``: ``python -m retrievalkit`` with the tree first on the path (the
    working folder too: ``-m`` puts it at the front of ``sys.path``)."""

    def __init__(self, tree: Path, label: str, env: dict):
        self.tree, self.label = tree, label
        self.env = dict(env, PYTHONPATH=str(tree))
        self.cmd = [sys.executable, "-m", "retrievalkit"]

    def wall(self, args: list[str]) -> float:
        return wall([*self.cmd, *args], self.env, self.tree)


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
    ap.add_argument("--baseline", type=Path, help="another rkit source tree, run alternately for comparison")
    args = ap.parse_args()
    py = sys.executable
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=str(args.threads),
               MKL_NUM_THREADS=str(args.threads))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # start-up is measured with compiled modules, as installed
    trees = [Rkit(ROOT, "rkit", env)]
    if args.baseline is not None:
        if not (args.baseline / "retrievalkit" / "__init__.py").is_file():
            raise SystemExit(f"--baseline {args.baseline}: not an rkit source tree (no retrievalkit/__init__.py)")
        trees.append(Rkit(args.baseline.resolve(), "rkit (baseline)", env))
    r = args.repeats

    if args.only_ratios:
        return ratios(args, env, trees)
    print(f"# start-up, fresh process each run, median of {r} (min–max); {args.threads} thread(s); "
          f"python {sys.version.split()[0]}" + (f"; baseline {args.baseline}" if args.baseline else ""))
    cols = "".join(f" {t.label:>28s}" for t in trees)
    print(f"{'what':48s}{cols}")
    for label, cmd in [("python -c pass", [py, "-c", "pass"]),
                       ("python -c 'import typer'", [py, "-c", "import typer"]),
                       ("python -c 'import faiss'", [py, "-c", "import faiss"]),
                       ("python -c 'import h5py, numpy, faiss'", [py, "-c", "import h5py, numpy, faiss"]),
                       ("python -c 'import torch'", [py, "-c", "import torch"])]:
        print(f"{label:48s} {stats([wall(cmd, env) for _ in range(r)]):>28s}")

    def row(label: str, args_: list[str]) -> None:
        times: list[list[float]] = [[] for _ in trees]
        for _ in range(r):  # trees alternated, so a change of load hits both
            for t, ts in zip(trees, times):
                ts.append(t.wall(args_))
        print(f"{label:48s}" + "".join(f" {stats(ts):>28s}" for ts in times))

    row("rkit --help", ["--help"])
    for c in COMMANDS:
        row("rkit " + " ".join(c) + " --help", [*c, "--help"])

    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        write_feats(t / "db1k.h5", 1000, 128, 1)
        write_feats(t / "q1k.h5", 100, 128, 2)
        s = str
        row("rkit index search (1k × 128, 100 queries)", ["-q", "index", "search", "--database", s(t / "db1k.h5"),
                                                         "--queries", s(t / "q1k.h5"), "-o", s(t / "r1k.h5"),
                                                         "-k", "10"])
        row("rkit index knn (1k × 128, k=10)", ["-q", "index", "knn", s(t / "db1k.h5"), "-o", s(t / "knn1k.h5"),
                                               "-k", "10"])
        row("rkit index fuse (2 ranks files)", ["-q", "index", "fuse", s(t / "r1k.h5"), s(t / "r1k.h5"),
                                               "-o", s(t / "fused.h5"), "-k", "10"])
        row("rkit whiten (1k × 128, --dim 64)", ["-q", "whiten", s(t / "db1k.h5"), "-o", s(t / "w.h5"),
                                                "--dim", "64"])
        row("rkit merge (one 1k × 128 file)", ["-q", "merge", s(t / "db1k.h5"), "-o", s(t / "m.h5")])
    ratios(args, env, trees)


def wall_cpu(cmd: list[str], env: dict, cwd: Path = ROOT) -> tuple[float, float]:
    """(wall s, CPU s = user + system of the child) of one fresh process."""
    import resource

    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env)
    dt = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return dt, (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)


def paired(runs: list[tuple[str, list[str], dict, Path]], bare: list[str], env: dict, r: int) -> None:
    """Alternated runs of each rkit command line (label, command, env, working folder) and the bare script;
    medians, spread and the per-pair ratio rkit / bare, of the wall time and of the CPU time (user + system;
    with one thread it does not grow when other jobs share the cores)."""
    a: list[list[tuple[float, float]]] = [[] for _ in runs]
    b = []
    for _ in range(r):
        for (_, cmd, env_, cwd), times in zip(runs, a):
            times.append(wall_cpu(cmd, env_, cwd))
        b.append(wall_cpu(bare, env))
    for j, what in ((0, "wall"), (1, "CPU")):
        y = [v[j] for v in b]
        for (label, *_), times in zip(runs, a):
            x = [v[j] for v in times]
            print(f"{label + ' (' + what + ')':48s} {stats(x):>28s}")
        print(f"{'bare faiss script (' + what + ')':48s} {stats(y):>28s}")
        for (label, *_), times in zip(runs, a):
            ratios = [p[j] / q for p, q in zip(times, y)]
            print(f"{'ratio ' + label.split(' ', 1)[1] + ' / bare, ' + what + ' (per pair)':48s} "
                  f"{statistics.median(ratios):7.3f}×   ({min(ratios):.3f}–{max(ratios):.3f})")


def fixed_cost(args, env: dict, trees: list[Rkit], t: Path) -> None:
    """What a run costs whatever its size: ``index search`` of 100 queries × 1000 × 128-D against the bare script,
    and the bare script with ``import typer`` added (the command-line library: the part of rkit's start-up no
    command can skip), CPU time, runs alternated, ``max(9, 3 × repeats)`` each."""
    py, r = sys.executable, max(9, 3 * args.repeats)
    write_feats(t / "fx_db.h5", 1000, 128, 6)
    write_feats(t / "fx_q.h5", 100, 128, 7)
    files = [str(t / "fx_db.h5"), str(t / "fx_q.h5")]
    runs = {tr.label: ([*tr.cmd, "-q", "index", "search", "--database", files[0], "--queries", files[1], "-o",
                        str(t / f"fx{i}.h5"), "-k", "100", "--block-size", "4096"], tr.env, tr.tree)
            for i, tr in enumerate(trees)}
    runs["bare faiss script"] = ([py, "-c", BARE, *files, str(t / "fx_bare.h5"), "100", "4096"], env, ROOT)
    runs["bare faiss script + import typer"] = ([py, "-c", "import typer\n" + BARE, *files, str(t / "fx_bt.h5"),
                                                 "100", "4096"], env, ROOT)
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(r):
        for k, (cmd, env_, cwd) in runs.items():
            cpu[k].append(wall_cpu(cmd, env_, cwd)[1])
    print()
    print(f"# fixed cost: index search, 100 queries × 1000 × 128-D, k=100, CPU time, median of {r} alternated runs")
    bare = statistics.median(cpu["bare faiss script"])
    for k, v in cpu.items():
        extra = "" if k == "bare faiss script" else f"   {statistics.median(v) - bare:+.3f} s over the bare script"
        print(f"{k:48s} {stats(v):>28s}{extra}")


def ratios(args, env: dict, trees: list[Rkit]) -> None:
    """Whole commands against bare faiss scripts making the same calls on the same files."""
    import h5py

    py, r = sys.executable, args.repeats

    def same(a: Path, b: Path) -> bool:
        with h5py.File(a, "r") as f, h5py.File(b, "r") as g:
            return np.array_equal(f["indices"][:], g["indices"][:])

    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        fixed_cost(args, env, trees, t)
        print()
        print(f"# index search, {args.queries} queries × {args.database} database × {args.dim}-D, k=100, "
              f"block 4096: whole command vs bare faiss script on the same files, runs alternated")
        write_feats(t / "db.h5", args.database, args.dim, 3)
        write_feats(t / "q.h5", args.queries, args.dim, 4)
        runs = [(f"{tr.label} index search", [*tr.cmd, "-q", "index", "search", "--database", str(t / "db.h5"),
                                              "--queries", str(t / "q.h5"), "-o", str(t / f"r{i}.h5"), "-k", "100",
                                              "--block-size", "4096"], tr.env, tr.tree) for i, tr in enumerate(trees)]
        cmd_bare = [py, "-c", BARE, str(t / "db.h5"), str(t / "q.h5"), str(t / "bare.h5"), "100", "4096"]
        paired(runs, cmd_bare, env, r)
        for i, tr in enumerate(trees):
            print(f"{'same neighbours as the bare script, ' + tr.label:48s} "
                  f"{str(same(t / f'r{i}.h5', t / 'bare.h5')):>28s}")
        if not args.knn_database:
            return
        n, k = args.knn_database, args.knn_k
        print()
        print(f"# index knn, {n} × {args.dim}-D, k={k}, block 4096: whole command vs bare faiss script (h5py read, "
              "IndexFlatIP add + blocked search of k+1, self dropped, h5py write), runs alternated")
        db = t / "db.h5" if n == args.database else t / "knn_db.h5"
        if n != args.database:
            write_feats(db, n, args.dim, 5)
        runs = [(f"{tr.label} index knn", [*tr.cmd, "-q", "index", "knn", str(db), "-o", str(t / f"knn{i}.h5"),
                                           "-k", str(k), "--block-size", "4096"], tr.env, tr.tree)
                for i, tr in enumerate(trees)]
        cmd_bare = [py, "-c", BARE_KNN, str(db), str(t / "bare_knn.h5"), str(k), "4096"]
        paired(runs, cmd_bare, env, r)
        for i, tr in enumerate(trees):
            print(f"{'same neighbours as the bare script, ' + tr.label:48s} "
                  f"{str(same(t / f'knn{i}.h5', t / 'bare_knn.h5')):>28s}")


if __name__ == "__main__":
    main()
