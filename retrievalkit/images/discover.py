"""Finding images: a folder (recursive), a list file, or the names of a revisitop ground truth."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from retrievalkit.errors import BadInputError, RkitWarning
from retrievalkit.images.policy import image_policy

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _inside(real: str, roots: list[str]) -> bool:
    return any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def allowed_roots(root: str | os.PathLike) -> list[str]:
    """Real paths of the folders images under ``root`` may lie in: ``root`` and the policy's allowed roots."""
    return [os.path.realpath(root), *image_policy().allow_roots]


def find_images(root: str | os.PathLike) -> list[str]:
    """All image files below ``root`` (recursive), as sorted POSIX paths relative to ``root``.

    Symbolic links are followed when they lead inside ``root`` or an allowed root (``rkit --allow-root``); a
    folder is walked once, by real path, so a link to a parent folder repeats nothing and link loops end.
    Links that lead elsewhere are skipped with one warning.
    """
    root = Path(root)
    if not root.is_dir():
        raise BadInputError(f"{root}: not a folder of images")
    roots = allowed_roots(root)
    seen = {roots[0]}
    names: list[str] = []
    outside: list[str] = []
    links: list[tuple[str, str]] = []  # (name, real path) of linked folders, walked after the real tree

    def walk(rel: str, path: str, real: str) -> None:
        stack = [(rel, path, real)]
        while stack:
            rel, path, real = stack.pop()
            try:
                entries = sorted(os.scandir(path), key=lambda e: e.name)
            except OSError:
                continue
            for e in entries:
                if e.name.startswith("."):
                    continue
                r = f"{rel}/{e.name}" if rel else e.name
                try:
                    if e.is_symlink():
                        target = os.path.realpath(e.path)
                        if not _inside(target, roots):
                            outside.append(r)
                        elif os.path.isdir(target):
                            links.append((r, target))
                        elif os.path.isfile(target) and e.name.lower().endswith(IMAGE_EXTENSIONS):
                            names.append(r)
                    elif e.is_dir(follow_symlinks=False):
                        sub = os.path.join(real, e.name)
                        if sub not in seen:
                            seen.add(sub)
                            stack.append((r, e.path, sub))
                    elif e.name.lower().endswith(IMAGE_EXTENSIONS) and e.is_file(follow_symlinks=False):
                        names.append(r)
                except OSError:
                    continue

    walk("", str(root), roots[0])
    while links:
        links.sort(reverse=True)
        r, target = links.pop()
        if target in seen or any(target.startswith(s + os.sep) for s in seen):
            continue  # already walked (a link to a parent, a sibling, or a loop)
        seen.add(target)
        walk(r, str(root / r), target)
    if outside:
        warnings.warn(f"{root}: skipped {len(outside)} link(s) leading outside the image folder (first: "
                      f"{outside[0]}); allow their target with `rkit --allow-root DIR`", RkitWarning, stacklevel=2)
    names.sort()
    if not names:
        raise BadInputError(f"{root}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return names


def check_names(root: str | os.PathLike, names: list[str], source: str | os.PathLike) -> None:
    """Refuse names (from the file ``source``) that are absolute or whose real path under ``root`` leaves
    ``root`` and the allowed roots: :class:`BadInputError` naming ``source`` and the first such name."""
    roots = allowed_roots(root)
    base = roots[0]
    parents: dict[str, str] = {}
    for n in names:
        if os.path.isabs(n) or n.startswith("~"):
            why = "is an absolute path"
        else:
            head, tail = os.path.split(n)
            if head not in parents:
                parents[head] = os.path.realpath(os.path.join(base, head))
            real = os.path.join(parents[head], tail)
            if os.path.islink(real) or tail in ("..", "."):
                real = os.path.realpath(real)
            if _inside(real, roots):
                continue
            why = f"leads outside the image folder (to {os.path.dirname(real)})"
        raise BadInputError(f"{source}: image name {n!r} {why}; names must be relative to the image folder {root} "
                            "— to read images elsewhere, allow their folder with `rkit --allow-root DIR`")


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
