"""`rkit show` verification view (matches drawn) and copy-detection view; `rkit evaluate --plot`."""

import csv
import json
import re

import cv2
import numpy as np
import pytest

from tests.conftest import run_rkit
from tests.show.conftest import page_data


def _png(path) -> np.ndarray:
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[0] > 100 and img.shape[1] > 100
    return img


def test_matches_view(demo_run, tmp_path):
    from retrievalkit.io.locals import read_locals
    from retrievalkit.verify.rerank import VerifyParams, count_inliers

    gnd = json.loads(demo_run["gnd"].read_text())
    sift = tmp_path / "all.sift.h5"  # every photo of the folder: one file serves queries and database
    run_rkit("--threads", "1", "extract", demo_run["images"], "--local", "--local-method", "sift", "--size", "320",
             "--max-features", "300", "-o", sift)
    out = tmp_path / "m.html"
    run_rkit("show", demo_run["ranks"], "--images", demo_run["images"], "--gnd", demo_run["gnd"], "--matches",
             "--queries", sift, "--database", sift, "--only", f"{gnd['qimlist'][0]},2", "-o", out)
    data = page_data(out)
    ql = dl = read_locals(sift)
    qpos, dpos = {n: i for i, n in enumerate(ql.names)}, {n: i for i, n in enumerate(dl.names)}
    assert len(data["queries"]) == 2
    some_inliers = False
    for row in data["queries"]:
        pairs = row["m"]
        shown = [data["names"][i] for i in row["r"][0]["i"]]
        assert [p["db"] for p in pairs] == shown == shown[:3]  # the top 3 results, in rank order
        kq, dq = ql.image(qpos[row["name"]])
        for p in pairs:
            kd, dd = dl.image(dpos[p["db"]])
            assert p["inliers"] == count_inliers(kq, dq, kd, dd, VerifyParams(), "sift")  # as rkit verify counts
            pic = cv2.imread(str(tmp_path / p["file"]))
            assert pic.shape[0] == 320 and pic.shape[1] > 320  # two images side by side
            green = (np.abs(pic.astype(int) - [60, 200, 60]).max(axis=2) < 40).sum()
            if p["inliers"] >= 10:
                some_inliers = True
                assert green > 50  # the inlier lines are drawn
    assert some_inliers


@pytest.fixture(scope="module")
def copy_case(data_dir, tmp_path_factory):
    """Hand-made predictions over the real copydetect-dev ids, with a known worst false positive and known
    missed copies."""
    cd = data_dir / "copydetect-dev"
    with open(cd / "ground_truth.csv") as f:
        rows = list(csv.DictReader(f))
    pairs = [(r["query_id"], r["reference_id"]) for r in rows if r["reference_id"]]
    distractors = [r["query_id"] for r in rows if not r["reference_id"]]
    found, missed = pairs[:20], pairs[20:25]
    preds = [(q, r, 0.5 + 0.01 * i) for i, (q, r) in enumerate(found)]
    worst_fp = (distractors[0], pairs[30][1], 0.99)
    preds += [worst_fp, (distractors[1], pairs[31][1], 0.2), (found[0][0], pairs[32][1], 0.1)]
    # the missed copies' queries predict a wrong reference only
    preds += [(q, pairs[40 + i][1], 0.05) for i, (q, _) in enumerate(missed)]
    out = tmp_path_factory.mktemp("show_cd")
    gt = out / "gt.csv"
    with open(gt, "w", newline="") as f:  # a ground truth limited to the queries used here
        w = csv.writer(f)
        w.writerow(["query_id", "reference_id"])
        for q, r in found + missed:
            w.writerow([q, r])
        w.writerow([distractors[0], ""])
        w.writerow([distractors[1], ""])
    m = out / "matches.csv"
    with open(m, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["query_id", "reference_id", "score"])
        w.writerows(preds)
    return {"dir": out, "gt": gt, "matches": m, "cd": cd, "worst_fp": worst_fp, "missed": missed}


def test_copy_detection_view(copy_case, tmp_path):
    c = copy_case
    out = tmp_path / "cd.html"
    run_rkit("show", c["matches"], "--gnd", c["gt"], "--queries", c["cd"] / "queries", "--database",
             c["cd"] / "references", "-o", out)
    html = out.read_text()
    fp = html[html.index('id="list-false-positives"'):html.index('id="missed"')]
    first = re.search(r'data-query="([^"]+)" data-reference="([^"]+)"', fp)
    assert (first.group(1), first.group(2)) == c["worst_fp"][:2]
    assert fp.count('class="pair"') == 3 + len(c["missed"])  # every wrong prediction, fewer than --examples
    missed = html[html.index('id="list-missed"'):]
    listed = re.findall(r'data-query="([^"]+)" data-reference="([^"]+)"', missed)
    assert sorted(listed) == sorted(c["missed"])
    assert missed.count("not predicted") == len(c["missed"])
    from retrievalkit.evaluate.copydetect_stage import evaluate_copy_detection

    metrics = evaluate_copy_detection(c["matches"], c["gt"])
    assert f"<td>{metrics['uap']:.4f}</td>" in html
    _png(tmp_path / "cd_files" / "pr.png")
    for src in re.findall(r'src="(cd_files/[^"]+)"', html):
        assert (tmp_path / src).is_file() and "missing" not in src


def test_evaluate_plot(demo_run, copy_case, tmp_path):
    run_rkit("evaluate", demo_run["ranks"], "--gnd", demo_run["gnd"], "--plot", tmp_path / "pr.png")
    a = _png(tmp_path / "pr.png")
    run_rkit("evaluate", copy_case["matches"], "--gt", copy_case["gt"], "--plot", tmp_path / "cd.png")
    b = _png(tmp_path / "cd.png")
    assert a.shape != b.shape  # two panels against one
    from tests.show.test_show_ranks import _rkit_here

    code, err = _rkit_here("evaluate", demo_run["ranks"], "--gnd", demo_run["gnd"], "--plot", tmp_path / "x.pdf")
    assert code == 2 and "png" in err
