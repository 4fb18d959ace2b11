"""Finding images: a folder (recursive), a list file, or the names of a revisitop ground truth."""

from __future__ import annotations

import os
from pathlib import Path

from retrievalkit.errors import BadInputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def find_images(root: str | os.PathLike) -> list[str]:
    """All image files below ``root`` (recursive), as sorted POSIX paths relative to ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise BadInputError(f"{root}: not a folder of images")
    names = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for fn in filenames:
            if fn.lower().endswith(IMAGE_EXTENSIONS) and not fn.startswith("."):
                names.append(Path(dirpath, fn).relative_to(root).as_posix())
    names.sort()
    if not names:
        raise BadInputError(f"{root}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return names


def read_list_file(path: str | os.PathLike) -> list[str]:
    """Image names from a text file, one per line (blank lines and ``#`` comments ignored)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise BadInputError(f"{path}: cannot read the image list ({e.__class__.__name__})") from None
    names = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not names:
        raise BadInputError(f"{path}: the image list is empty")
    return names


def resolve_name(root: Path, name: str) -> str:
    """Map a ground-truth name (no extension) to the file under ``root``: ``name`` itself or ``name.<ext>``."""
    if (root / name).is_file():
        return name
    for ext in IMAGE_EXTENSIONS + tuple(e.upper() for e in IMAGE_EXTENSIONS):
        if (root / (name + ext)).is_file():
            return name + ext
    return name + ".jpg"  # missing: reported as a failed image by the loader


def strip_extension(name: str) -> str:
    """The name without a known image extension (ground truth names carry none)."""
    low = name.lower()
    for ext in IMAGE_EXTENSIONS:
        if low.endswith(ext):
            return name[: -len(ext)]
    return name


def select_shard(items: list, shard: tuple[int, int] | None) -> tuple[int, int]:
    """The [start, stop) range of ``items`` that shard ``(i, n)`` (1-based i) handles: contiguous blocks."""
    if shard is None:
        return 0, len(items)
    i, n = shard
    if not (n >= 1 and 1 <= i <= n):
        raise BadInputError(f"shard {i}/{n}: expected I/N with 1 <= I <= N")
    per, extra = divmod(len(items), n)
    start = (i - 1) * per + min(i - 1, extra)
    stop = start + per + (1 if i - 1 < extra else 0)
    return start, stop


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        i, n = (int(t) for t in text.split("/"))
    except ValueError:
        from retrievalkit.errors import UsageError

        raise UsageError(f"--shard {text!r}: expected I/N, e.g. 2/8") from None
    if not (n >= 1 and 1 <= i <= n):
        from retrievalkit.errors import UsageError

        raise UsageError(f"--shard {text!r}: expected 1 <= I <= N")
    return i, n
