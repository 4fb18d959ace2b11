"""A tiny, generated world for the fault-injection tests: images, features, shards, ground truth, tuples.

Everything is made once per test session in a temporary folder (random 64×48 PNGs, the random ``tiny-cnn``
model at 32 px), with one rkit process for all the set-up commands. The malicious files that the loader tests
feed rkit are made here too: pickles and torch files whose loading would call ``os.system`` to create a marker.
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.reliability.rkit_batch import Result, run_batch

N_IMAGES = 12
N_BIG = 256  # enough images that an extraction is still running when a test interrupts it
EXTRACT = ["--model", "tiny-cnn", "--size", "32", "--workers", "0"]


@dataclass
class World:
    root: Path
    images: Path
    feats: Path
    ranks: Path
    whiten: Path
    tuples: Path
    locals: Path
    shards: list[Path]
    big: Path
    big_clean: Path
    gnd_json: Path
    gnd_pkl: Path
    cirtorch_pkl: Path
    setup: list[Result]


class RunsCode:
    """Unpickling this calls ``os.system(command)``: what a malicious file does."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def write_images(folder: Path, n: int, seed: int = 0, size: tuple[int, int] = (48, 64)) -> list[str]:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = []
    for i in range(n):
        img = (rng.random((*size, 3)) * 255).astype(np.uint8)
        img[: size[0] // 2, : size[1] // 3] = rng.integers(0, 255, 3)  # some structure, not only noise
        name = f"im{i:03d}.png"
        cv2.imwrite(str(folder / name), img)
        names.append(name)
    return names


def gnd_dict(names: list[str]) -> dict:
    """A revisitop-like ground truth: the last three images are queries, each with numpy index arrays."""
    stems = [n.rsplit(".", 1)[0] for n in names]
    db, qs = stems[:-3], stems[-3:]
    gnd = []
    for i, _ in enumerate(qs):
        gnd.append({"easy": np.array([i, i + 3], dtype=np.int64), "hard": np.array([i + 6], dtype=np.int64),
                    "junk": np.array([], dtype=np.int64), "bbx": None})
    return {"imlist": db, "qimlist": qs, "gnd": gnd}


def cirtorch_dict(names: list[str]) -> dict:
    """A cirtorch retrieval-SfM-like training file: numpy clusters, list pairs."""
    half = len(names) // 2
    tr, va = names[:half], names[half:]
    return {"train": {"cids": tr, "cluster": np.array([i // 2 for i in range(len(tr))], dtype=np.int64),
                      "qidxs": [0, 2, 4], "pidxs": [1, 3, 5]},
            "val": {"cids": va, "cluster": np.array([i // 2 for i in range(len(va))], dtype=np.int64),
                    "qidxs": np.array([0, 2]), "pidxs": np.array([1, 3])}}


def to_jsonable(x):
    if isinstance(x, dict):
        return {k: to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x


def make_world(root: Path) -> World:
    from retrievalkit.whiten.whitening_file import Whitening, write_whitening

    images = root / "images"
    names = write_images(images, N_IMAGES)
    big = root / "big"
    write_images(big, N_BIG, seed=5, size=(24, 32))
    gnd = gnd_dict(names)
    (root / "gnd.json").write_text(json.dumps(to_jsonable(gnd)))
    with open(root / "gnd.pkl", "wb") as f:
        pickle.dump(gnd, f, protocol=2)  # as revisitop's files: protocol 2, numpy arrays inside
    with open(root / "cirtorch.pkl", "wb") as f:
        pickle.dump(cirtorch_dict(names), f, protocol=2)
    # a whitening file written by the library (learning one from 12 vectors would be degenerate statistics)
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(64, 64)))
    write_whitening(root / "whiten.h5", Whitening(np.zeros(64, np.float32), q[:16].astype(np.float32)))
    out = {k: root / f"{k}.h5" for k in ("feats", "ranks", "tuples", "locals")}
    shards = [root / f"part{i}.h5" for i in (1, 2, 3)]
    cases = [["extract", images, "-o", out["feats"], *EXTRACT],
             ["index", "search", out["feats"], out["feats"], "-o", out["ranks"], "-k", "5"],
             ["train", "import-cirtorch", root / "cirtorch.pkl", "-o", out["tuples"], "--layout", "flat",
              "--images", images],
             *[["extract", images, "-o", s, *EXTRACT, "--shard", f"{i}/3"] for i, s in enumerate(shards, 1)],
             ["extract", big, "-o", root / "big_clean.h5", *EXTRACT],
             ["extract", images, "-o", out["locals"], "--local", "--local-method", "sift", "--size", "64",
              "--max-features", "50"],
             ["evaluate", out["ranks"], "--gnd", root / "gnd.json"],
             ["evaluate", out["ranks"], "--gnd", root / "gnd.pkl"]]
    setup = run_batch(cases, root)
    for args, r in zip(cases, setup):
        if r.code != 0:
            raise AssertionError(f"set-up command rkit {' '.join(map(str, args))} failed ({r.code}):\n{r.stderr}")
    return World(root, images, out["feats"], out["ranks"], root / "whiten.h5", out["tuples"], out["locals"], shards,
                 big, root / "big_clean.h5", root / "gnd.json", root / "gnd.pkl", root / "cirtorch.pkl", setup)


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    return make_world(tmp_path_factory.mktemp("world"))


def assert_refused(r: Result, code: int, *words: str, changed: set[str] | None = None) -> str:
    """A refused command: exit ``code``, exactly one ``error:`` line on stderr (no traceback) containing
    ``words``, nothing on stdout, and no file created, changed or removed (except the paths in ``changed``)."""
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in r.stderr, r.stderr
    assert r.code == code, (r.code, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert r.stdout == ""
    diff = {k for k in set(r.before) | set(r.after) if r.before.get(k) != r.after.get(k)}
    assert diff <= (changed or set()), f"files touched by a refused command: {sorted(diff)}"
    return lines[0]
