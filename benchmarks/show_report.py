"""`rkit show` at scale: page size, generation time and browser load time for 1k and 10k queries.

Synthetic ranks (top 100 per query) over a pool of generated small JPEG images, with a synthetic revisitop
ground truth (random easy / hard / junk). For each query count: the report is generated cold (every thumbnail
made) and then ``--repeats`` times warm (thumbnails reused); the page is opened ``--repeats`` times in headless
Chromium (when installed), reading the page's own timer (navigation start → first page of rows in the DOM)
and the wall time of the whole browser run (start-up included; a blank page's run is given for reference).

    .venv/bin/python benchmarks/show_report.py                       # 1000 and 10000 queries
    .venv/bin/python benchmarks/show_report.py --queries 1000 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from retrievalkit.io.ranks import Ranks, write_ranks  # noqa: E402
from retrievalkit.show import ShowConfig, build_ranks_report  # noqa: E402


def make_pool(folder: Path, n: int, seed: int = 0) -> list[str]:
    """``n`` small JPEGs (160×120, coloured rectangles) under ``folder``; their names."""
    rng = np.random.default_rng(seed)
    names = []
    for i in range(n):
        img = np.full((120, 160, 3), rng.integers(0, 255, 3), np.uint8)
        for _ in range(4):
            x, y = rng.integers(0, 140), rng.integers(0, 100)
            cv2.rectangle(img, (int(x), int(y)), (int(x + 30), int(y + 20)), rng.integers(0, 255, 3).tolist(), -1)
        name = f"img/{i // 1000:02d}/{i:06d}.jpg"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / name), img)
        names.append(name)
    return names


def make_case(folder: Path, pool: list[str], nq: int, k: int = 100, seed: int = 1) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    if nq > len(pool):
        raise SystemExit(f"--pool {len(pool)}: needs at least as many images as queries ({nq})")
    qnames = pool[:nq]  # queries are pool pictures too (revisitop query names are unique)
    idx = np.stack([rng.choice(len(pool), k, replace=False) for _ in range(nq)])
    scores = np.sort(rng.random((nq, k)).astype(np.float32), axis=1)[:, ::-1]
    ranks = folder / f"ranks{nq}.h5"
    write_ranks(ranks, Ranks(qnames, pool, idx, scores))
    gnd = {"imlist": [n[:-4] for n in pool], "qimlist": [q[:-4] for q in qnames], "gnd": []}
    for _ in range(nq):
        pick = rng.choice(len(pool), 12, replace=False).tolist()
        gnd["gnd"].append({"easy": pick[:5], "hard": pick[5:9], "junk": pick[9:], "bbx": None})
    gnd_path = folder / f"gnd{nq}.json"
    gnd_path.write_text(json.dumps(gnd))
    return ranks, gnd_path


def browser_load(page: Path, profile: Path) -> tuple[float | None, float]:
    """(page's own draw time in ms, wall seconds of the browser run)."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    args = [exe, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
            "--window-size=1400,1000", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()]
    t = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True, timeout=300).stdout
    wall = time.perf_counter() - t
    m = re.search(r'data-draw-ms="([0-9.]+)"', out)
    return (float(m.group(1)) if m else None), wall


def spread(xs: list[float], fmt: str = "{:.2f}") -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    return f"{fmt.format(statistics.median(xs))} ({fmt.format(min(xs))}–{fmt.format(max(xs))})"


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", default="1000,10000", help="comma-separated query counts")
    ap.add_argument("--pool", type=int, default=0, help="generated images (default: the largest query count)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    sizes = [int(s) for s in args.queries.split(",")]
    has_browser = bool(shutil.which("chromium") or shutil.which("chromium-browser"))
    with tempfile.TemporaryDirectory(prefix="rkit-show-bench-") as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        pool = make_pool(tmp, args.pool or max(sizes))
        print(f"generated {len(pool)} images in {time.perf_counter() - t:.1f} s")
        blank = tmp / "blank.html"
        blank.write_text("<!doctype html><title>blank</title><body>blank</body>")
        blank_wall = [browser_load(blank, tmp / "profile")[1] for _ in range(args.repeats)] if has_browser else []
        rows = []
        for nq in sizes:
            ranks, gnd = make_case(tmp, pool, nq)
            out = tmp / f"report{nq}.html"
            cfg = ShowConfig()
            t = time.perf_counter()
            build_ranks_report([ranks], tmp, out, cfg, gnd_path=gnd)
            cold = time.perf_counter() - t
            warm = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                build_ranks_report([ranks], tmp, out, cfg, gnd_path=gnd)
                warm.append(time.perf_counter() - t)
            draw, wall = [], []
            for _ in range(args.repeats if has_browser else 0):
                d, w = browser_load(out, tmp / "profile")
                draw.append(d)
                wall.append(w)
            rows.append((nq, out.stat().st_size / 1e6, folder_bytes(tmp / f"report{nq}_files") / 1e6, cold,
                         spread(warm), spread(draw, "{:.0f}"), spread(wall)))
    print(f"\n{'queries':>8} {'page MB':>8} {'thumbs MB':>9} {'cold s':>7} {'warm s median (min–max)':>24} "
          f"{'draw ms median (min–max)':>25} {'browser s median (min–max)':>27}")
    for nq, page, thumbs, cold, warm, draw, wall in rows:
        print(f"{nq:>8} {page:>8.2f} {thumbs:>9.1f} {cold:>7.1f} {warm:>24} {draw:>25} {wall:>27}")
    if has_browser:
        print(f"blank page, browser s median (min–max): {spread(blank_wall)}")
    else:
        print("headless Chromium not found (Debian: apt-get install chromium): load times not measured")
    print(f"{args.repeats} repeats; top 10 of 100 results shown per query, 50 query rows per page")


if __name__ == "__main__":
    main()
