"""The picture grid of the copy augmentations in docs/copy-detect.md, made from the bundled demo photos.

    python examples/augment_grid.py docs/img/copy-augmentations.jpg

Rows: each augmentation of retrievalkit.copydetect.augment at strength 0.25, 0.5 and 1 (seed 1); last row: five
training views (copy_view at 160 px, the recipe of rkit train --loss infonce) of the same photo.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from retrievalkit.copydetect.augment import AUGMENTATIONS, apply, copy_view

DEMO = Path(__file__).resolve().parent / "demo" / "images"
TILE = 112
LABEL = 104


def _fit(img: np.ndarray) -> np.ndarray:
    """img letterboxed into a TILE×TILE grey tile."""
    h, w = img.shape[:2]
    s = TILE / max(h, w)
    small = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    tile = np.full((TILE, TILE, 3), 235, np.uint8)
    y, x = (TILE - small.shape[0]) // 2, (TILE - small.shape[1]) // 2
    tile[y:y + small.shape[0], x:x + small.shape[1]] = small
    return tile


def _label(text: str, width: int = LABEL) -> np.ndarray:
    cell = np.full((TILE, width, 3), 255, np.uint8)
    cv2.putText(cell, text, (4, TILE // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return cell


def _load(path: Path, size: int = 320) -> np.ndarray:
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    s = size / max(img.shape[:2])
    return cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)


def main(out: str) -> None:
    photo = _load(sorted((DEMO / "sacre_coeur").glob("*.jpg"))[0])
    other = _load(sorted((DEMO / "kermit").glob("*.jpg"))[0])
    strengths = (0.25, 0.5, 1.0)
    rows = []
    for name in AUGMENTATIONS:
        tiles = [_label(name)]
        for s in strengths:
            tiles.append(_fit(apply(name, photo, np.random.default_rng(1), s, others=[other])))
        rows.append(np.concatenate(tiles, axis=1))
    half = (len(rows) + 1) // 2
    blank = np.full_like(rows[0], 255)
    left, right = rows[:half], rows[half:] + [blank] * (2 * half - len(rows))
    header = np.full((22, rows[0].shape[1], 3), 255, np.uint8)
    for k, s in enumerate(strengths):
        cv2.putText(header, f"strength {s:g}", (LABEL + k * TILE + 8, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                    (0, 0, 0), 1, cv2.LINE_AA)
    cols = [np.concatenate([header, *col], axis=0) for col in (left, right)]
    grid = np.concatenate([cols[0], np.full((cols[0].shape[0], 8, 3), 255, np.uint8), cols[1]], axis=1)
    rng = np.random.default_rng(0)
    views = [_label("original"), _fit(photo), _label("views", 90)]
    views += [_fit(copy_view(photo, rng, 160, others=[other])) for _ in range(5)]
    strip = np.concatenate(views, axis=1)
    width = grid.shape[1]
    strip = strip[:, :width] if strip.shape[1] >= width else \
        np.concatenate([strip, np.full((TILE, width - strip.shape[1], 3), 255, np.uint8)], axis=1)
    img = np.concatenate([grid, np.full((8, width, 3), 255, np.uint8), strip], axis=0)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(out, cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    print(out, img.shape[1], "x", img.shape[0])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/img/copy-augmentations.jpg")
