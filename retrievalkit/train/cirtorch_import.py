"""Import cirtorch's training data (``retrieval-SfM-120k.pkl`` / ``retrieval-SfM-30k.pkl``) as a tuples file.

cirtorch stores, per split (``train``, ``val``): ``cids`` (image ids), ``cluster`` (3D model per image),
``qidxs``/``pidxs`` (query/positive pairs, indices into ``cids``). Images live under
``ims/<cid[-2:]>/<cid[-4:-2]>/<cid[-6:-4]>/<cid>`` (no extension); ``layout='flat'`` names them ``<cid>``.
The training split becomes the tuples; the validation split (when asked) the held-out pairs, with its clusters
offset so that they never collide with training clusters.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from retrievalkit.configs.checks import stage_config
from retrievalkit.configs.train import CirtorchImportConfig
from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.io.output import writes_output
from retrievalkit.io.pickles import load_pickle
from retrievalkit.io.tuples import Tuples, write_tuples


def cid_to_name(cid: str, layout: str = "cirtorch") -> str:
    """Image name of a cirtorch id: ``ab/cd/ef/<cid>`` from the id's last six characters (or ``<cid>``)."""
    if layout == "flat":
        return cid
    return f"{cid[-2:]}/{cid[-4:-2]}/{cid[-6:-4]}/{cid}"


def _split(db: dict, key: str, path: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    part = db.get(key)
    if not isinstance(part, dict):
        raise BadInputError(f"{path}: no '{key}' split (found {', '.join(map(str, db)) or 'nothing'}); "
                            "is this a cirtorch retrieval-SfM-*.pkl?")
    try:
        cids = [str(c) for c in part["cids"]]
        cluster = np.asarray(part["cluster"], np.int64).reshape(-1)
        q = np.asarray(part["qidxs"], np.int64).reshape(-1)
        p = np.asarray(part["pidxs"], np.int64).reshape(-1)
    except KeyError as e:
        raise BadInputError(f"{path}: split '{key}' lacks {e}; expected cids, cluster, qidxs, pidxs") from None
    except (TypeError, ValueError) as e:
        raise BadInputError(f"{path}: split '{key}' has malformed arrays ({e})") from None
    if len(cluster) != len(cids) or q.shape != p.shape:
        raise BadInputError(f"{path}: split '{key}': {len(cids)} cids vs {len(cluster)} clusters, "
                            f"{len(q)} qidxs vs {len(p)} pidxs; the file is corrupt")
    return cids, cluster, q, p


def read_cirtorch_db(path: str | os.PathLike) -> dict:
    path = Path(path)
    db = load_pickle(path, "cirtorch pickle")  # restricted: refuses anything that would run code
    if not isinstance(db, dict):
        raise BadInputError(f"{path}: holds a {type(db).__name__}, expected a dict of splits")
    return db


def cirtorch_to_tuples(db: dict, image_root: str = "", val: bool = True, layout: str = "cirtorch",
                       source: str | os.PathLike = "cirtorch db") -> Tuples:
    """A :class:`Tuples` from a loaded cirtorch db dict (train split; val split as held-out pairs)."""
    if layout not in ("cirtorch", "flat"):
        raise UsageError(f"--layout {layout!r}: expected cirtorch or flat")
    path = Path(source)
    cids, cluster, q, p = _split(db, "train", path)
    names = [cid_to_name(c, layout) for c in cids]
    vq = vp = None
    if val and "val" in db:
        vcids, vcluster, vqi, vpi = _split(db, "val", path)
        index = {n: i for i, n in enumerate(names)}
        offset = int(cluster.max(initial=-1)) + 1
        vmap = np.empty(len(vcids), np.int64)
        extra_cluster = []
        for i, c in enumerate(vcids):
            name = cid_to_name(c, layout)
            if name not in index:
                index[name] = len(names)
                names.append(name)
                extra_cluster.append(vcluster[i] + offset if vcluster[i] >= 0 else -1)
            vmap[i] = index[name]
        cluster = np.concatenate([cluster, np.asarray(extra_cluster, np.int64)])
        vq, vp = vmap[vqi], vmap[vpi]
    config = {"source": str(source), "format": "cirtorch retrieval-SfM", "layout": layout,
              "train_pairs": int(len(q)), "val_pairs": int(0 if vq is None else len(vq))}
    return Tuples(names, cluster, q, p, None, str(image_root), config, vq, vp)


@writes_output("output", inputs=("pkl",))
def import_cirtorch(pkl: str | os.PathLike, output: str | os.PathLike, config: CirtorchImportConfig | None = None, *,
                    image_root: str | os.PathLike = "", progress: Callable[[int], None] | None = None) -> Path:
    """Read a cirtorch ``retrieval-SfM-*.pkl`` and write it as a tuples file; returns the path.

    ``image_root``: the folder holding cirtorch's ims/ tree (stored in the file). ``progress(n)`` is called once,
    with the number of images, when the tuples are made."""
    config = stage_config(config, CirtorchImportConfig)
    db = read_cirtorch_db(pkl)
    t = cirtorch_to_tuples(db, str(image_root), config.val, config.layout, pkl)
    if progress:
        progress(len(t.names))
    return write_tuples(output, t, inputs={"cirtorch_db": str(pkl)})
