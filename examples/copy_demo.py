"""A small copy-detection task made from the bundled photos (for `rkit show`'s copy-detection page and its
screenshot in docs/show.md): every demo photo is a reference; 8 queries are edited copies of references
(crop, flip, rotation, blur, caption, picture-in-picture), 4 are unrelated distractors; training = the bundled
distractor photos.

    python examples/copy_demo.py OUT        # writes OUT/{queries,references,training}/ and OUT/ground_truth.csv
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

DEMO = Path(__file__).resolve().parent / "demo"


def edits(img: np.ndarray, k: int, other: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    if k == 0:  # centre crop
        return img[h // 6: h - h // 6, w // 6: w - w // 6]
    if k == 1:  # mirrored
        return img[:, ::-1]
    if k == 2:  # rotated a little, with borders
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 12, 0.85)
        return cv2.warpAffine(img, m, (w, h), borderValue=(255, 255, 255))
    if k == 3:  # blurred and darker
        return (cv2.GaussianBlur(img, (9, 9), 3) * 0.6).astype(np.uint8)
    if k == 4:  # a meme-style caption
        out = cv2.copyMakeBorder(img, h // 5, 0, 0, 0, cv2.BORDER_CONSTANT, value=(255, 255, 255))
        cv2.putText(out, "when the copy is obvious", (10, h // 8), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2)
        return out
    if k == 5:  # the photo pasted small into another picture
        bg = cv2.resize(other, (w, h))
        small = cv2.resize(img, (w // 2, h // 2))
        bg[h // 4: h // 4 + small.shape[0], w // 4: w // 4 + small.shape[1]] = small
        return bg
    if k == 6:  # strong JPEG and grey
        grey = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        return cv2.imdecode(cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, 15])[1], cv2.IMREAD_COLOR)
    return cv2.resize(img[: h // 2, : w // 2], (w, h))  # top-left quarter, enlarged


def main(out: Path) -> None:
    refs = sorted((DEMO / "images").rglob("*.jpg"))
    distractors = sorted((DEMO / "distractors").glob("*.jpg"))
    for d in ("queries", "references", "training"):
        (out / d).mkdir(parents=True, exist_ok=True)
    ids = {}
    for i, p in enumerate(refs):
        ids[p] = f"R{i:03d}"
        shutil.copyfile(p, out / "references" / f"{ids[p]}.jpg")
    for p in distractors[4:]:
        shutil.copyfile(p, out / "training" / p.name)
    rows = ["query_id,reference_id"]
    picks = refs[::7][:8]  # every seventh photo: all six scenes appear
    for k, p in enumerate(picks):
        img = cv2.imread(str(p))
        q = edits(img, k, cv2.imread(str(distractors[k % 4])))
        cv2.imwrite(str(out / "queries" / f"Q{k:03d}.jpg"), q)
        rows.append(f"Q{k:03d},{ids[p]}")
    for j, p in enumerate(distractors[:4]):
        shutil.copyfile(p, out / "queries" / f"Q{100 + j:03d}.jpg")
        rows.append(f"Q{100 + j:03d},")
    (out / "ground_truth.csv").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "examples/out/copies"))
