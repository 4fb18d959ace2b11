"""`rkit show` on rankings: every selected query drawn, labels from the ground truth, worst-first order,
thumbnails made, cached and referenced, query boxes drawn, names escaped, options refused where they don't apply."""

import json
import os
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from tests.conftest import run_rkit
from tests.show.conftest import page_data


def _strip(name: str) -> str:
    return os.path.splitext(name)[0] if name.lower().endswith((".jpg", ".png", ".jpeg")) else name


def _reference_ap(ranked: list[str], gnd: dict, q: int, protocol: str) -> float | None:
    """revisitop compute_ap, written out as a loop over the whole ranked list."""
    g = gnd["gnd"][q]
    easy, hard, junk = set(g["easy"]), set(g["hard"]), set(g["junk"])
    pos = {"easy": easy, "medium": easy | hard, "hard": hard}[protocol]
    ign = {"easy": junk | hard, "medium": junk, "hard": junk | easy}[protocol]
    if not pos:
        return None
    index = {n: i for i, n in enumerate(gnd["imlist"])}
    ap, found, r = 0.0, 0, 0
    for name in ranked:
        i = index.get(_strip(name), -1)
        if i in ign:
            continue
        if i in pos:
            p0 = found / r if r > 0 else 1.0
            p1 = (found + 1) / (r + 1)
            ap += (p0 + p1) / 2
            found += 1
        r += 1
    return ap / len(pos)


def _category(name: str, gnd: dict, q: int) -> str:
    i = {n: k for k, n in enumerate(gnd["imlist"])}.get(_strip(name), -1)
    g = gnd["gnd"][q]
    return "e" if i in g["easy"] else "h" if i in g["hard"] else "j" if i in g["junk"] else "w"


def _ranked_names(ranks_path: Path) -> dict[str, list[str]]:
    with h5py.File(ranks_path, "r") as f:
        qn = [s.decode() for s in f["query_names"][()]]
        dn = [s.decode() for s in f["db_names"][()]]
        idx = f["indices"][()]
    return {_strip(q): [dn[j] for j in row if j >= 0] for q, row in zip(qn, idx)}


def test_ranks_report_on_demo(demo_run, tmp_path):
    out = tmp_path / "report.html"
    proc = run_rkit("show", demo_run["ranks"], "--images", demo_run["images"], "--gnd", demo_run["gnd"], "-o", out)
    assert proc.stdout.strip() == str(out)
    gnd = json.loads(demo_run["gnd"].read_text())
    data = page_data(out)
    rows = data["queries"]
    # every query of the ground truth, once
    assert sorted(_strip(r["name"]) for r in rows) == sorted(gnd["qimlist"])
    ranked = _ranked_names(demo_run["ranks"])
    q_index = {n: i for i, n in enumerate(gnd["qimlist"])}
    aps = []
    for r in rows:
        q = q_index[_strip(r["name"])]
        res = r["r"][0]
        names = [data["names"][i] for i in res["i"]]
        assert names == ranked[_strip(r["name"])][:10]  # the top 10 of the ranks file, in order
        assert res["c"] == "".join(_category(n, gnd, q) for n in names)
        for p in ("easy", "medium", "hard"):
            ref = _reference_ap(ranked[_strip(r["name"])], gnd, q, p)
            assert (res["ap"][p] is None) == (ref is None)
            if ref is not None:
                assert res["ap"][p] == pytest.approx(ref, abs=1e-4)
        aps.append((res["ap"]["medium"], r["name"]))
    # worst first (the random network leaves a spread of APs to order)
    assert len({a for a, _ in aps}) > 1
    assert aps == sorted(aps, key=lambda t: (t[0] is None, t[0] or 0.0, t[1]))
    # thumbnails exist and are what the page references
    folder = tmp_path / "report_files"
    for rel in data["images"]:
        assert rel.startswith("report_files/")
        img = cv2.imread(str(tmp_path / rel))
        assert img is not None and max(img.shape[:2]) <= 192
    # the box query's thumbnail has the box drawn in pure green at the scaled corners
    boxed = [r for r in rows if r["box"]]
    assert [_strip(r["name"]) for r in boxed] == [gnd["qimlist"][1]]
    thumb = cv2.imread(str(tmp_path / data["images"][boxed[0]["q"]]))
    src = cv2.imread(str(demo_run["images"] / (gnd["qimlist"][1] + ".jpg")))
    s = thumb.shape[1] / src.shape[1]
    x1, y1, x2, y2 = (round(v * s) for v in gnd["gnd"][1]["bbx"])
    edge = thumb[y1, x1 + 2 : x2 - 2].astype(int)
    assert (np.abs(edge - [0, 255, 0]).max(axis=1) < 60).mean() > 0.9  # JPEG: close to green
    # metrics table and plot
    html = out.read_text()
    from retrievalkit.evaluate.stage import evaluate_ranks_file

    metrics = evaluate_ranks_file(demo_run["ranks"], demo_run["gnd"])
    assert f"<td>{metrics['map']['medium']:.2f}</td>" in html
    assert (folder / "pr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'src="report_files/pr.png"' in html
    assert "http://" not in html and "https://" not in html  # nothing fetched from a network


def test_thumbnails_are_cached_and_refreshed(demo_run, tmp_path):
    images = tmp_path / "images"
    # a copy of the demo photos, so one can be touched
    for p in demo_run["images"].rglob("*.jpg"):
        d = images / p.relative_to(demo_run["images"])
        d.parent.mkdir(parents=True, exist_ok=True)
        d.write_bytes(p.read_bytes())
    from retrievalkit.show import ShowConfig, build_ranks_report

    out = tmp_path / "r.html"
    build_ranks_report([demo_run["ranks"]], images, out, ShowConfig(top_k=3))
    thumbs = sorted((tmp_path / "r_files" / "t").glob("*.jpg"))
    assert thumbs
    before = {p: p.stat().st_mtime_ns for p in thumbs}
    time.sleep(0.05)
    build_ranks_report([demo_run["ranks"]], images, out, ShowConfig(top_k=3))
    assert {p: p.stat().st_mtime_ns for p in thumbs} == before  # reused, not rewritten
    data = page_data(out)
    first = images / data["names"][data["queries"][0]["q"]]
    later = time.time() + 5
    os.utime(first, (later, later))  # the source changed after its thumbnail was made
    build_ranks_report([demo_run["ranks"]], images, out, ShowConfig(top_k=3))
    changed = [p for p in thumbs if p.stat().st_mtime_ns != before[p]]
    assert changed == [tmp_path / data["images"][data["queries"][0]["q"]]]


def test_only_sort_and_unlabelled(demo_run, tmp_path):
    gnd = json.loads(demo_run["gnd"].read_text())
    out = tmp_path / "o.html"
    pick = f"{gnd['qimlist'][3]},0"
    run_rkit("show", demo_run["ranks"], "--images", demo_run["images"], "--gnd", demo_run["gnd"], "-o", out,
             "--only", pick, "--sort", "name", "-k", "5")
    rows = page_data(out)["queries"]
    assert [_strip(r["name"]) for r in rows] == sorted([gnd["qimlist"][3], gnd["qimlist"][0]])
    assert all(len(r["r"][0]["i"]) == 5 for r in rows)
    # without ground truth: the same gallery, unlabelled, in the ranks file's order
    from retrievalkit.show import build_ranks_report

    build_ranks_report([demo_run["ranks"]], demo_run["images"], out)
    data = page_data(out)
    with h5py.File(demo_run["ranks"], "r") as f:
        file_order = [s.decode() for s in f["query_names"][()]]
    assert [r["name"] for r in data["queries"]] == file_order
    assert data["protocols"] == [] and all(set(r["r"][0]["c"]) == {"u"} for r in data["queries"])
    assert "Metrics (revisitop" not in out.read_text()


def test_comparison_of_two_rankings(demo_run, tmp_path):
    other = tmp_path / "diffused.h5"
    run_rkit("--threads", "1", "diffuse", "--database", demo_run["db"], "--queries", demo_run["q"], "-o", other)
    out = tmp_path / "cmp.html"
    run_rkit("show", demo_run["ranks"], other, "--images", demo_run["images"], "--gnd", demo_run["gnd"],
             "-o", out)
    data = page_data(out)
    assert data["methods"] == ["ranks.h5", "diffused.h5"] and data["sort"] == "diff"
    gnd = json.loads(demo_run["gnd"].read_text())
    ranked = [_ranked_names(demo_run["ranks"]), _ranked_names(other)]
    wins = [0, 0]
    for r in data["queries"]:
        q = gnd["qimlist"].index(_strip(r["name"]))
        a = [_reference_ap(rk[_strip(r["name"])], gnd, q, "medium") for rk in ranked]
        assert [x["ap"]["medium"] for x in r["r"]] == pytest.approx(a, abs=1e-4)
        if a[0] != a[1]:
            wins[int(a[1] > a[0])] += 1
    html = out.read_text()
    row = html[html.index('<tr class="only-medium">'):]
    assert row.startswith(f'<tr class="only-medium"><td>medium</td><td>{wins[0]}</td><td>{wins[1]}</td>')
    assert (tmp_path / "cmp_files" / "compare.png").read_bytes()[:4] == b"\x89PNG"


def test_names_are_escaped(tmp_path):
    from retrievalkit.io.ranks import Ranks, write_ranks

    images = tmp_path / "imgs"
    images.mkdir()
    names = ["a<b&c.jpg", 'q"<script>x.jpg', "plain.jpg"]
    for i, n in enumerate(names):
        cv2.imwrite(str(images / n), np.full((40, 60, 3), 60 * i, np.uint8))
    write_ranks(tmp_path / "r.h5", Ranks([names[1]], names, np.array([[0, 2, 1]]), np.array([[0.9, 0.5, 0.1]],
                                                                                            np.float32)))
    out = tmp_path / "e.html"
    run_rkit("show", tmp_path / "r.h5", "--images", images, "-o", out)
    html = out.read_text()
    assert "a<b&c" not in html and "<script>x" not in html
    data = page_data(out)
    assert [data["names"][i] for i in data["queries"][0]["r"][0]["i"]] == [names[0], names[2], names[1]]
    assert "missing" not in " ".join(data["images"])  # every odd name found its file


def _rkit_here(*args):
    """The rkit command in this process (usage errors need no fresh interpreter): (exit code, stderr)."""
    from typer.testing import CliRunner

    from retrievalkit.cli.app import app

    res = CliRunner().invoke(app, [str(a) for a in args])
    return res.exit_code, res.stderr


def test_refused_options_and_bad_input(demo_run, tmp_path):
    out = tmp_path / "x.html"
    base = ["show", demo_run["ranks"], "--images", demo_run["images"], "-o", out]
    code, err = _rkit_here(*base, "--sort", "ap")
    assert code == 2 and "--gnd" in err
    code, err = _rkit_here(*base, "--only", "no_such_query")
    assert code == 2 and "no such query" in err
    code, err = _rkit_here("show", demo_run["ranks"], "-o", out)
    assert code == 2 and "--images" in err
    code, err = _rkit_here(*base, "--matches")
    assert code == 2 and "locals" in err
    code, err = _rkit_here(*base, "--examples", "3")
    assert code == 2 and "copy-detection" in err
    bad = tmp_path / "bad.json"
    bad.write_text('{"imlist": []}')
    code, err = _rkit_here(*base, "--gnd", bad)
    assert code == 3 and "bad.json" in err
    assert not out.exists()
    # the real command: one line, no traceback
    p = run_rkit(*base, "--gnd", bad, check=False)
    assert p.returncode == 3 and p.stderr.startswith("error:") and "Traceback" not in p.stderr
