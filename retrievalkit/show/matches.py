"""The verification view: a query and a result side by side with their local-feature matches drawn.

The matches are recomputed for the shown pairs with :func:`retrievalkit.verify.rerank.match_pair` (the
function ``rkit verify`` counts inliers with), using the settings recorded in a ``rkit verify`` output (or
the defaults for any other ranks file): RANSAC inliers as green lines, the other tentative matches as red dots.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from retrievalkit.errors import BadInputError
from retrievalkit.io.ranks import Ranks
from retrievalkit.show.thumbs import atomic_write_bytes, encode_image, image_file, read_image
from retrievalkit.verify.rerank import VerifyParams, match_pair

HEIGHT = 320  # height of each image in a drawn pair, pixels
INLIER = (60, 200, 60)
OUTLIER = (40, 40, 230)


def params_from_config(config: dict) -> VerifyParams:
    """The matching settings a ``rkit verify`` output records; the defaults for any other ranks file."""
    p = VerifyParams()
    if config.get("verified"):
        p.method = str(config.get("geometry", p.method))
        p.ratio = config.get("ratio")
        if p.ratio is None:
            p.ratio = 0.0  # recorded None = no ratio test; 0 keeps it off
        p.mutual = bool(config.get("mutual", True))
        p.threshold = config.get("threshold")
        p.min_inliers = int(config.get("min_inliers", p.min_inliers))
    return p


def draw_pair(img1: np.ndarray, img2: np.ndarray, kp1: np.ndarray, kp2: np.ndarray, matches: np.ndarray,
              inliers: np.ndarray, box=None, height: int = HEIGHT) -> np.ndarray:
    """Side-by-side BGR picture of two images scaled to ``height``, inlier matches as lines.

    ``kp1``/``kp2`` are in pixels of the original images; ``box`` (query box, original pixels) is drawn too.
    """
    import cv2

    s1 = height / img1.shape[0]
    s2 = height / img2.shape[0]
    a = cv2.resize(img1, (max(1, round(img1.shape[1] * s1)), height), interpolation=cv2.INTER_AREA)
    b = cv2.resize(img2, (max(1, round(img2.shape[1] * s2)), height), interpolation=cv2.INTER_AREA)
    gap = 8
    canvas = np.full((height, a.shape[1] + gap + b.shape[1], 3), 255, np.uint8)
    canvas[:, : a.shape[1]] = a
    off = a.shape[1] + gap
    canvas[:, off:] = b
    if box is not None:
        x1, y1, x2, y2 = (round(v * s1) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), (0, 255, 0), 2)
    if matches.shape[0]:
        p1 = kp1[matches[:, 0], :2] * s1
        p2 = kp2[matches[:, 1], :2] * s2 + np.array([off, 0.0])
        for (x1, y1), (x2, y2) in zip(p1[~inliers], p2[~inliers]):
            cv2.circle(canvas, (round(x1), round(y1)), 2, OUTLIER, -1, cv2.LINE_AA)
            cv2.circle(canvas, (round(x2), round(y2)), 2, OUTLIER, -1, cv2.LINE_AA)
        for (x1, y1), (x2, y2) in zip(p1[inliers], p2[inliers]):
            cv2.line(canvas, (round(x1), round(y1)), (round(x2), round(y2)), INLIER, 1, cv2.LINE_AA)
            cv2.circle(canvas, (round(x1), round(y1)), 2, INLIER, -1, cv2.LINE_AA)
            cv2.circle(canvas, (round(x2), round(y2)), 2, INLIER, -1, cv2.LINE_AA)
    return canvas


class MatchDrawer:
    """Draws and caches the matched pairs of a ranks file's queries into ``folder/m/``."""

    def __init__(self, ranks: Ranks, queries_locals: str | os.PathLike, database_locals: str | os.PathLike,
                 images: Path, folder: Path):
        from retrievalkit.io.locals import read_locals

        self.ranks = ranks
        self.ql = read_locals(queries_locals)
        self.dl = read_locals(database_locals)
        kind_q, kind_d = self.ql.config.get("method"), self.dl.config.get("method")
        if kind_q != kind_d or self.ql.dim != self.dl.dim:
            raise BadInputError(f"{queries_locals}: {kind_q} {self.ql.dim}-d locals cannot be matched with {kind_d} "
                                f"{self.dl.dim}-d locals of {database_locals}; give the locals the ranking "
                                "was verified with")
        self.kind = kind_q or "sift"
        self.params = params_from_config(ranks.config)
        self.qpos = {n: i for i, n in enumerate(self.ql.names)}
        self.dpos = {n: i for i, n in enumerate(self.dl.names)}
        self.images = images
        self.folder = folder
        (folder / "m").mkdir(parents=True, exist_ok=True)
        stamp = f"{Path(queries_locals).resolve()}|{os.stat(queries_locals).st_mtime_ns}|" \
                f"{Path(database_locals).resolve()}|{os.stat(database_locals).st_mtime_ns}|{self.params}"
        self.stamp = stamp
        self.missing_locals: list[str] = []

    def draw_query(self, row: int, k: int, box=None) -> list[dict]:
        """Draw the first ``k`` results of ranks row ``row``; one dict per pair (file, rank, inliers, ...)."""
        qn = self.ranks.query_names[row]
        if qn not in self.qpos:
            self.missing_locals.append(qn)
            return []
        kq, dq = self.ql.image(self.qpos[qn])
        out = []
        q_img = None
        for j in range(min(k, self.ranks.indices.shape[1])):
            di = int(self.ranks.indices[row, j])
            if di < 0:
                break
            dn = self.ranks.db_names[di]
            if dn not in self.dpos:
                self.missing_locals.append(dn)
                continue
            kd, dd = self.dl.image(self.dpos[dn])
            m, mask = match_pair(kq, dq, kd, dd, self.params, self.kind)
            entry = {"rank": j + 1, "db": dn, "inliers": int(mask.sum()), "tentative": int(m.shape[0]),
                     "score": float(f"{self.ranks.scores[row, j]:.4g}"), "file": None}
            tag = f"{self.stamp}|{qn}|{dn}|{box}"
            rel = f"m/{hashlib.sha1(tag.encode()).hexdigest()[:20]}.jpg"
            path = self.folder / rel
            qf, df = image_file(self.images, qn), image_file(self.images, dn)
            if qf is not None and df is not None:
                fresh = path.is_file() and path.stat().st_mtime >= max(qf.stat().st_mtime, df.stat().st_mtime)
                if not fresh:
                    if q_img is None:
                        q_img = read_image(qf)
                    d_img = read_image(df)
                    if q_img is not None and d_img is not None:
                        pic = draw_pair(q_img, d_img, kq, kd, m, mask, box)
                        atomic_write_bytes(path, encode_image(pic, ".jpg", 88))
                        fresh = True
                if fresh:
                    entry["file"] = f"{self.folder.name}/{rel}"
            out.append(entry)
        return out
