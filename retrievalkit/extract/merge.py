"""Joining shard outputs (``extract --shard I/N``) into one features file."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from retrievalkit.configs.checks import stage_config
from retrievalkit.configs.extract import MergeConfig
from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.io.features import KIND, SCHEMA, Features, read_features, write_features
from retrievalkit.io.h5file import open_checked
from retrievalkit.io.output import writes_output

_SHARD_KEYS = ("shard", "shard_range")


def _check_finished(f: Features) -> None:
    """A part must be a finished extraction whose rows account for its whole range, each item exactly once."""
    if f.path is not None and f.path.name.startswith(".") and f.path.name.endswith(".partial"):
        raise BadInputError(f"{f.path}: an unfinished extraction (a partial output); finish it with "
                            "`rkit extract ... --resume` before merging")
    with open_checked(f.path, KIND, SCHEMA) as h:
        done = h.attrs.get("done")
    done = None if done is None else int(done)
    rows = len(f.names) + len(f.failed)
    rng = f.config.get("shard_range")
    if rng:
        s, e = (int(v) for v in rng)
        if done is not None and done < e - s:
            raise BadInputError(f"{f.path}: an unfinished extraction ({done} of the {e - s} images of its range "
                                f"{s}-{e} done); finish it with `rkit extract ... --resume` before merging")
        if rows != e - s:
            raise BadInputError(f"{f.path}: holds {rows} images (rows + failed) but its shard range {s}-{e} has "
                                f"{e - s}; the file was altered or is damaged — re-extract this shard")
    elif done is not None and done != rows:
        raise BadInputError(f"{f.path}: holds {rows} images (rows + failed) but records {done} done; the file is "
                            "unfinished or altered — re-extract it")
    if len(set(f.names)) != len(f.names):
        raise BadInputError(f"{f.path}: an image name appears twice; the file was altered — re-extract it")


@writes_output("output", inputs=("inputs",))
def merge_features(inputs: Sequence[str | os.PathLike], output: str | os.PathLike, config: MergeConfig | None = None,
                   *, progress: Callable[[int], None] | None = None) -> Path:
    """Concatenate features files made with the same settings, in shard order.

    Shard outputs are sorted by their recorded range and must tile the whole input without gaps or overlap.
    ``config`` has no settings; ``progress(n)`` advances by the images of each input read.
    """
    stage_config(config, MergeConfig)
    if not inputs:
        raise UsageError("merge: give at least one features file")
    parts = []
    for p in inputs:
        parts.append(read_features(p))
        _check_finished(parts[-1])
        if progress:
            progress(len(parts[-1].names))
    base_cfg = {k: v for k, v in parts[0].config.items() if k not in _SHARD_KEYS}
    for f in parts[1:]:
        cfg = {k: v for k, v in f.config.items() if k not in _SHARD_KEYS}
        if cfg != base_cfg:
            diff = sorted(k for k in set(cfg) | set(base_cfg) if cfg.get(k) != base_cfg.get(k))
            raise BadInputError(f"{f.path}: made with other settings than {parts[0].path} ({', '.join(diff)}); "
                                "merge only shards of one extraction")
        if f.dim != parts[0].dim:
            raise BadInputError(f"{f.path}: dimension {f.dim} differs from {parts[0].path} ({parts[0].dim})")
    ranged = [bool(f.config.get("shard_range")) for f in parts]
    if any(ranged) and not all(ranged):
        f = parts[ranged.index(False)]
        raise BadInputError(f"{f.path}: records no shard range while the other inputs do; merge only the shard "
                            "outputs of one extraction")
    if all(ranged):
        parts.sort(key=lambda f: f.config["shard_range"][0])
        pos = 0
        for f in parts:
            s, e = f.config["shard_range"]
            if s < pos:
                raise BadInputError(f"{f.path}: shard covers images {s}-{e} but the previous shards already reach "
                                    f"{pos}; shards overlap (a shard given twice?)")
            if s > pos:
                raise BadInputError(f"{f.path}: shard starts at image {s} but the previous shards end at {pos}; "
                                    "a shard is missing")
            pos = e
        total = parts[0].config.get("total_images")
        if total is not None and pos != total:
            raise BadInputError(f"{parts[-1].path}: the shards cover {pos} of {total} images; a shard is missing "
                                f"(images {pos}-{total})")
    names = [n for f in parts for n in f.names]
    if len(set(names)) != len(names):
        raise BadInputError("merge: an image name appears in two inputs; merge each shard once")
    vectors = np.concatenate([f.vectors for f in parts], 0)
    image_index = None
    if any(f.image_index is not None for f in parts):
        if not all(f.image_index is not None for f in parts):
            raise BadInputError("merge: mixing region and whole-image features files")
        offs = np.cumsum([0] + [len(f.names) for f in parts[:-1]])
        image_index = np.concatenate([f.image_index + o for f, o in zip(parts, offs)])
    cfg = dict(base_cfg, shard=None, shard_range=None, merged_from=[str(f.path) for f in parts])
    merged = Features(names, vectors, cfg, [n for f in parts for n in f.failed],
                      [r for f in parts for r in f.failed_reason], image_index)
    half = any(f.config.get("half") for f in parts)
    return write_features(output, merged, inputs={f"part{i}": str(f.path) for i, f in enumerate(parts)}, half=half)
