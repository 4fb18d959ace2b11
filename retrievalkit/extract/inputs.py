"""Which images a run covers: a folder, a list file, or one split of a revisitop ground truth."""

from __future__ import annotations

from pathlib import Path

from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.images.discover import check_names, find_images, read_list_file, resolve_name


def resolve_inputs(images: str | Path, list_file: str | Path | None = None, gnd: str | Path | None = None,
                   split: str | None = None, use_boxes: bool = True) -> tuple[list[str], list | None]:
    """Return (names relative to ``images``, query boxes or None).

    With ``list_file``: one name per line, with or without the image extension.
    With ``gnd``: names come from its ``imlist`` (split=database) or ``qimlist`` (split=queries), resolved to
    files under ``images``; query boxes (``bbx``) are applied to the queries unless ``use_boxes`` is False.
    """
    images = Path(images)
    if not images.is_dir():
        raise BadInputError(f"{images}: not a folder; give the folder the image names are relative to")
    if gnd is not None and list_file is not None:
        raise UsageError("--gnd and --list are exclusive: take names from one of them")
    if gnd is not None:
        from retrievalkit.evaluate.groundtruth import load_gnd

        if split not in ("database", "queries"):
            raise UsageError("--gnd needs --split database or --split queries")
        g = load_gnd(gnd)
        raw = g.imlist if split == "database" else g.qimlist
        check_names(images, raw, gnd)
        names = [resolve_name(images, n) for n in raw]
        if len(set(names)) != len(names):
            which = "imlist" if split == "database" else "qimlist"
            raise BadInputError(f"{gnd}: image {_first_repeat(names)!r} appears twice in its {which}; "
                                "ground-truth indices need each image once")
        boxes = None
        if split == "queries" and use_boxes:
            bx = list(g.bbx)
            boxes = bx if any(b is not None for b in bx) else None
        return names, boxes
    if split is not None:
        raise UsageError("--split needs --gnd")
    if list_file is not None:
        # names as in a features file (with extension) or as in ground truth (without): both resolve to the file
        names = []
        listed = read_list_file(list_file)
        check_names(images, listed, list_file)
        for n in listed:
            r = resolve_name(images, n)
            names.append(r if (images / r).is_file() else n)
        unique = list(dict.fromkeys(names))
        if len(unique) != len(names):
            import warnings

            from retrievalkit.errors import RkitWarning

            warnings.warn(f"{list_file}: {len(names) - len(unique)} repeated image name(s) (first: "
                          f"{_first_repeat(names)!r}); each image is taken once",
                          RkitWarning, stacklevel=2)
        return unique, None
    return find_images(images), None


def _first_repeat(names: list[str]) -> str | None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            return n
        seen.add(n)
    return None
