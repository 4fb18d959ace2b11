"""The pages in a real browser (headless Chromium, the system package): what a person would see — the rows
drawn, the border colours by label, every image loaded, the plots present. Screenshots go to the test's
temporary folder. Skips with a reason where Chromium is not installed (Debian: apt-get install chromium)."""

import re
import subprocess

import pytest

from tests.conftest import run_rkit
from tests.show.conftest import chromium, page_data

COLOUR_CLASS = {"e": "tile pe", "h": "tile ph", "j": "tile j", "w": "tile w"}  # Medium protocol


def _browser(page, tmp_path, *extra, fragment=""):
    args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1400,6000",
            "--virtual-time-budget=8000", *extra, page.as_uri() + fragment]
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("headless Chromium did not finish within 120 s")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_ranks_page_in_browser(demo_run, tmp_path):
    out = tmp_path / "report.html"
    run_rkit("show", demo_run["ranks"], "--images", demo_run["images"], "--gnd", demo_run["gnd"], "-o", out,
             "--page-size", "4", "-k", "6")
    dom = _browser(out, tmp_path, "--dump-dom")
    body = re.search(r"<body([^>]*)>", dom).group(1)
    assert 'data-ready="1"' in body and 'data-broken="0"' in body
    assert 'data-rows="4"' in body
    assert "page 1 of 3 (10 queries)" in dom
    rows = re.findall(r'<div class="row" data-name="([^"]+)">', dom)
    data = page_data(out)
    assert rows == [q["name"] for q in data["queries"][:4]]  # the first page, in the page's order
    # each result tile carries the colour class of its label under the opening (Medium) protocol
    tiles = re.findall(r'<figure class="(tile [a-z]+)" data-cat="([a-z])">', dom)
    expected = "".join(q["r"][0]["c"] for q in data["queries"][:4])
    assert [c for _, c in tiles] == list(expected)
    assert all(cls == COLOUR_CLASS[c] for cls, c in tiles)
    assert not re.search(r'<img[^>]*class="[^"]*broken', dom) and "report_files/pr.png" in dom
    # the protocol switch: under Hard, easy positives are ignored (grey) and hard ones count; page 2 by name
    dom = _browser(out, tmp_path, "--dump-dom", fragment="#protocol=hard&sort=name&page=2")
    assert 'class="proto-hard"' in dom and "page 2 of 3" in dom
    by_name = sorted(data["queries"], key=lambda q: q["name"])[4:8]
    assert re.findall(r'<div class="row" data-name="([^"]+)">', dom) == [q["name"] for q in by_name]
    hard = {"e": "tile j", "h": "tile ph", "j": "tile j", "w": "tile w"}
    tiles = re.findall(r'<figure class="(tile [a-z]+)" data-cat="([a-z])">', dom)
    assert [c for _, c in tiles] == list("".join(q["r"][0]["c"] for q in by_name))
    assert all(cls == hard[c] for cls, c in tiles)
    _browser(out, tmp_path, "--screenshot=" + str(tmp_path / "ranks.png"), "--window-size=1400,1600")
    assert (tmp_path / "ranks.png").stat().st_size > 10_000


def test_copy_detection_page_in_browser(data_dir, tmp_path):
    cd = data_dir / "copydetect-dev"
    gt = tmp_path / "gt.csv"
    gt.write_text("query_id,reference_id\nQ00001,R000101\nQ00000,\n")
    m = tmp_path / "m.csv"
    m.write_text("query_id,reference_id,score\nQ00000,R000101,0.9\nQ00001,R000102,0.3\n")
    out = tmp_path / "cd.html"
    run_rkit("show", m, "--gnd", gt, "--queries", cd / "queries", "--database", cd / "references", "-o", out)
    dom = _browser(out, tmp_path, "--dump-dom")
    assert dom.count('class="pair"') == 3  # two false positives, one missed copy
    imgs = re.findall(r"<img[^>]*>", dom)
    # the plot, 2 × 2 for the false positives, 3 for the missed copy (with its top prediction); all loaded
    assert len(imgs) == 8 and not [i for i in imgs if re.search(r'class="[^"]*broken', i)]
    assert 'id="plot-pr"' in dom
    _browser(out, tmp_path, "--screenshot=" + str(tmp_path / "cd.png"), "--window-size=1200,1400")
    assert (tmp_path / "cd.png").stat().st_size > 10_000


def test_matches_page_in_browser(demo_run, tmp_path):
    """The verification view: each query next to its top results with the inliers drawn, every picture loaded."""
    import json

    gnd = json.loads(demo_run["gnd"].read_text())
    sift = tmp_path / "all.sift.h5"
    run_rkit("--threads", "1", "extract", demo_run["images"], "--local", "--local-method", "sift", "--size", "320",
             "--max-features", "300", "-o", sift)
    out = tmp_path / "m.html"
    run_rkit("show", demo_run["ranks"], "--images", demo_run["images"], "--gnd", demo_run["gnd"], "--matches",
             "--queries", sift, "--database", sift, "--only", f"{gnd['qimlist'][0]},2", "-o", out)
    data = page_data(out)
    dom = _browser(out, tmp_path, "--dump-dom")
    body = re.search(r"<body([^>]*)>", dom).group(1)
    assert 'data-ready="1"' in body and 'data-broken="0"' in body
    assert re.findall(r'<div class="row" data-name="([^"]+)">', dom) == [q["name"] for q in data["queries"]]
    files = [p["file"] for q in data["queries"] for p in q["m"]]
    assert files and all(f in dom for f in files)  # every drawn pair is on the page
    assert not re.search(r'<img[^>]*class="[^"]*broken', dom)
    _browser(out, tmp_path, "--screenshot=" + str(tmp_path / "matches.png"), "--window-size=1400,1600")
    assert (tmp_path / "matches.png").stat().st_size > 10_000
