"""Draw the demo's queries with their boxes into one picture (docs/img/demo-queries.jpg).

    python examples/draw_demo_queries.py [--gnd examples/demo/gnd-hard.json] [-o docs/img/demo-queries.jpg]

Each tile is one query photo; the green box is the query region (`bbx`), a whole-photo query has a green frame.
Under each tile: the query name and its positives (easy + hard) in the database.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TILE_W, TILE_H, CAPTION = 256, 192, 22


def tile(image: np.ndarray, box, caption: str) -> np.ndarray:
    h, w = image.shape[:2]
    s = min(TILE_W / w, TILE_H / h)
    small = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    out = np.full((TILE_H + CAPTION, TILE_W, 3), 255, np.uint8)
    y0, x0 = (TILE_H - small.shape[0]) // 2, (TILE_W - small.shape[1]) // 2
    out[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    if box is None:
        p1, p2 = (x0 + 1, y0 + 1), (x0 + small.shape[1] - 2, y0 + small.shape[0] - 2)
    else:
        p1 = (x0 + round(box[0] * s), y0 + round(box[1] * s))
        p2 = (x0 + round(box[2] * s) - 1, y0 + round(box[3] * s) - 1)
    cv2.rectangle(out, p1, p2, (0, 0, 0), 4)
    cv2.rectangle(out, p1, p2, (0, 230, 0), 2)
    cv2.putText(out, caption, (4, TILE_H + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def draw(gnd_path: Path, out_path: Path, cols: int = 4) -> Path:
    g = json.loads(gnd_path.read_text())
    root = gnd_path.parent
    tiles = []
    for name, q in zip(g["qimlist"], g["gnd"]):
        path = next(root.glob(name + ".*"))
        image = cv2.imread(str(path))
        short = name.split("/", 1)[-1]
        short = short if len(short) <= 24 else short.rsplit("/", 1)[-1][:20]
        tiles.append(tile(image, q["bbx"], f"{short}: {len(q['easy'])}+{len(q['hard'])} pos"))
    while len(tiles) % cols:
        tiles.append(np.full_like(tiles[0], 255))
    grid = np.vstack([np.hstack(tiles[i:i + cols]) for i in range(0, len(tiles), cols)])
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name("." + out_path.name + ".tmp.jpg")
    cv2.imwrite(str(tmp), grid, [cv2.IMWRITE_JPEG_QUALITY, 80])
    tmp.replace(out_path)
    return out_path


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gnd", type=Path, default=ROOT / "examples" / "demo" / "gnd-hard.json")
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "img" / "demo-queries.jpg")
    a = ap.parse_args()
    print(draw(a.gnd, a.output))
