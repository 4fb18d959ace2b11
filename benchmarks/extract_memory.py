"""Peak memory of ``rkit extract`` against the number of images: it should not grow with the folder.

Generates folders of 1k and 4k small JPEGs (random blocks, 160×120) in a temporary folder, runs the real
``rkit extract`` on each (``--model tiny-cnn --size 128 --workers 2`` by default: decoding and writing dominate,
which is what scales with the number of images), and prints one row per run:

- ``largest process``: the peak resident set of the largest single process (the main process or one decoding
  worker), from ``getrusage(RUSAGE_CHILDREN)`` of a fresh wrapper process per run;
- ``all processes``: the peak of main + workers together, sampled from /proc every 50 ms (Linux only);
- the ratio of each to the smallest folder's.

    .venv/bin/python benchmarks/extract_memory.py                       # 1000 and 4000 images, 2 runs each
    .venv/bin/python benchmarks/extract_memory.py --sizes 1000 4000 16000 --repeat 1

The machine may be shared: times vary, peak memory much less.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WRAPPER = """
import json, resource, subprocess, sys
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode
print(json.dumps({"rc": rc, "maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def make_images(folder: Path, n: int, seed: int = 0) -> None:
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        small = rng.integers(0, 255, size=(12, 16, 3), dtype=np.uint8)
        img = cv2.resize(small, (160, 120), interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(folder / f"{i:06d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 85])


def _tree_rss_kb(pid: int) -> int:
    """Resident set of ``pid`` and its children (kB), from /proc; 0 when it has gone."""
    total = 0
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            pids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def run_once(images: Path, out: Path, extra: list[str]) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH",
                                                                                                        "")]))
    cmd = [sys.executable, "-c", WRAPPER, sys.executable, "-m", "retrievalkit", "-q", "--threads", "1", "extract",
           str(images), "-o", str(out), *extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak_tree = 0
    while proc.poll() is None:
        kids = []
        for task in Path(f"/proc/{proc.pid}/task").glob("*"):
            try:
                kids += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
        peak_tree = max([peak_tree] + [_tree_rss_kb(k) for k in kids])
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    res = json.loads(stdout.strip().splitlines()[-1])
    if res["rc"] != 0:
        raise SystemExit(f"rkit extract failed ({res['rc']}):\n{stderr}")
    return {"largest_mb": res["maxrss_kb"] / 1024, "tree_mb": peak_tree / 1024, "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--model", default="tiny-cnn")
    ap.add_argument("--size", default="128")
    ap.add_argument("--workers", default="2")
    args = ap.parse_args()
    extra = ["--model", args.model, "--size", args.size, "--workers", args.workers, "--device", "cpu"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="rkit-extract-memory-") as tmp:
        for n in args.sizes:
            folder = Path(tmp) / f"n{n}"
            make_images(folder, n)
            for r in range(args.repeat):
                out = Path(tmp) / f"f{n}-{r}.h5"
                rows.append({"images": n, "run": r + 1, **run_once(folder, out, extra)})
                out.unlink()
    base_l = min(r["largest_mb"] for r in rows if r["images"] == args.sizes[0])
    base_t = min(r["tree_mb"] for r in rows if r["images"] == args.sizes[0])
    print(f"rkit extract {' '.join(extra)}")
    print(f"{'images':>7} {'run':>4} {'largest process MB':>19} {'ratio':>6} {'all processes MB':>17} {'ratio':>6} "
          f"{'wall s':>7} {'images/s':>9}")
    for r in rows:
        print(f"{r['images']:>7} {r['run']:>4} {r['largest_mb']:>19.0f} {r['largest_mb'] / base_l:>6.2f} "
              f"{r['tree_mb']:>17.0f} {r['tree_mb'] / base_t:>6.2f} {r['wall_s']:>7.1f} "
              f"{r['images'] / r['wall_s']:>9.0f}")


if __name__ == "__main__":
    main()
