"""Thumbnails for the report pages: made once, kept in the report's ``<name>_files/`` folder and reused.

A thumbnail's file name is a hash of the source image's absolute path, the size and the drawn box, so names
with ``/``, ``..`` or characters that HTML or a file system dislikes never reach either. A thumbnail is reused
while it is newer than its source image; every write goes through a temporary file and a rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from retrievalkit.images.discover import IMAGE_EXTENSIONS, resolve_name, strip_extension

#: BGR colour of a query box drawn on its thumbnail (pure green, easy to find in pixels).
BOX_COLOUR = (0, 255, 0)
MISSING = "missing.png"


def image_file(root: Path, name: str) -> Path | None:
    """The file of image ``name`` (as stored in a ranks file or a ground truth) under ``root``, or None.

    Names may carry their extension (``a/b.jpg``, features and ranks files) or not (``a/b``, revisitop ground
    truth), and may leave the folder (``../../distractors-dev/x``, pairs-dev).
    """
    p = root / name
    if p.is_file():
        return p
    r = root / resolve_name(root, strip_extension(name))
    return r if r.is_file() else None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a cache file (thumbnail, drawn pair) through a temporary file in the same folder and a rename.

    Lighter than ``io/output.atomic_file`` (no lock or fsync per file, thousands of them): the report's own
    claim on its page guards the folder against a second writer."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def encode_image(img: np.ndarray, ext: str = ".jpg", quality: int = 85) -> bytes:
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext == ".jpg" else []
    ok, buf = cv2.imencode(ext, img, params)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {ext} image")
    return buf.tobytes()


def read_image(path: Path) -> np.ndarray | None:
    """BGR uint8 image, or None when the file cannot be decoded (the page shows a 'missing' tile)."""
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    return img


def fit_size(img: np.ndarray, size: int) -> np.ndarray:
    """Resized so the longer side is at most ``size`` (never enlarged), INTER_AREA."""
    import cv2

    h, w = img.shape[:2]
    s = size / max(h, w)
    if s >= 1:
        return img
    return cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def draw_box(img: np.ndarray, box, scale: float) -> np.ndarray:
    """Draw ``box`` = (x1, y1, x2, y2) in pixels of the original image onto its copy scaled by ``scale``."""
    import cv2

    out = img.copy()
    x1, y1, x2, y2 = (round(v * scale) for v in box)
    h, w = out.shape[:2]
    x1, x2 = max(0, min(w - 1, x1)), max(0, min(w - 1, x2))
    y1, y2 = max(0, min(h - 1, y1)), max(0, min(h - 1, y2))
    thick = max(2, round(max(h, w) / 80))
    cv2.rectangle(out, (x1, y1), (x2, y2), BOX_COLOUR, thick)
    return out


class Thumbnails:
    """Makes (or reuses) thumbnails in ``folder``; ``get`` returns the file name relative to ``folder``.

    Args:
        folder: the report's ``<name>_files`` folder (created when missing).
        root: the image root that names are relative to (None: names are absolute or relative paths).
        size: longer side of a thumbnail in pixels.
    """

    def __init__(self, folder: Path, root: Path | None, size: int = 192):
        self.folder = Path(folder)
        self.root = Path(root) if root is not None else None
        self.size = int(size)
        self.made = 0
        self.reused = 0
        self.missing: list[str] = []
        self._memo: dict[tuple, str] = {}
        (self.folder / "t").mkdir(parents=True, exist_ok=True)

    def source(self, name: str) -> Path | None:
        if self.root is None:
            p = Path(name)
            return p if p.is_file() else None
        return image_file(self.root, name)

    def missing_tile(self) -> str:
        path = self.folder / MISSING
        if not path.is_file():
            tile = np.full((self.size * 3 // 4, self.size, 3), 200, np.uint8)
            import cv2

            cv2.putText(tile, "missing", (8, tile.shape[0] // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (80, 80, 80), 1)
            atomic_write_bytes(path, encode_image(tile, ".png"))
        return MISSING

    def get(self, name: str, box=None) -> str:
        """Thumbnail of image ``name`` (with ``box`` drawn when given), relative to the folder."""
        key = (name, None if box is None else tuple(float(v) for v in box))
        if key in self._memo:
            return self._memo[key]
        src = self.source(name)
        if src is None:
            self.missing.append(name)
            rel = self.missing_tile()
        else:
            rel = self._make(src, box)
        self._memo[key] = rel
        return rel

    def _make(self, src: Path, box) -> str:
        tag = f"{src.resolve()}|{self.size}|{'' if box is None else ','.join(f'{v:g}' for v in box)}"
        rel = f"t/{hashlib.sha1(tag.encode()).hexdigest()[:20]}.jpg"
        out = self.folder / rel
        with contextlib.suppress(OSError):
            if out.stat().st_mtime >= src.stat().st_mtime:
                self.reused += 1
                return rel
        img = read_image(src)
        if img is None:
            self.missing.append(str(src))
            return self.missing_tile()
        small = fit_size(img, self.size)
        if box is not None:
            small = draw_box(small, box, small.shape[1] / img.shape[1])
        atomic_write_bytes(out, encode_image(small))
        self.made += 1
        return rel


def stem_index(folder: Path) -> dict[str, Path]:
    """Copy-detection ids (file stems) → image files below ``folder``."""
    from retrievalkit.images.discover import find_images

    out: dict[str, Path] = {}
    for rel in find_images(folder):
        if rel.lower().endswith(IMAGE_EXTENSIONS):
            out.setdefault(Path(rel).stem, folder / rel)
    return out
