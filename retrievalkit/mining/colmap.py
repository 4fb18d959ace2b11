"""Structure-from-Motion of one collection with pycolmap (CPU): SIFT, matching, incremental mapping.

Everything a reconstruction produces lives in its work folder::

    WORK/database.db      COLMAP database (features, matches)
    WORK/database.json    the settings the database was made with (a matching database is reused)
    WORK/sparse/<i>/      the models (COLMAP binary format; open with pycolmap.Reconstruction or the COLMAP GUI)
    WORK/colmap.log       COLMAP's log
    WORK/status.json      written last: state (done | failed), reason, settings, image names, models

A folder whose ``status.json`` matches the settings and image names is finished: a rerun loads it instead of
reconstructing again. Each reconstruction runs in a child process (``reconstruct_isolated``) so that a crash
or a hang inside COLMAP costs one scene, never the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from retrievalkit.configs.mining import MATCHERS, SfmMineConfig
from retrievalkit.errors import MissingDependencyError, UsageError
from retrievalkit.io.output import write_text
from retrievalkit.mining.positives import ModelObservations

STATUS = "status.json"
#: reconstruction defaults come from ``rkit sfm-mine``'s settings (the one place they live)
_S = SfmMineConfig()


@dataclass
class SfmOptions:
    """Settings of one reconstruction (all part of the "finished" check except ``threads``/``timeout``).

    Attributes:
        max_image_size: longer side (pixels) images are downscaled to for SIFT.
        max_features: SIFT features kept per image.
        matcher: ``exhaustive`` (all pairs) or ``sequential`` (each image with the next ``overlap``; for videos).
        overlap: neighbours per image for the sequential matcher.
        min_model_size: smallest model (registered images) kept.
        min_num_matches: verified matches for two images to count as connected.
        relaxed_init: accept initial pairs with forward motion and a 4° (not 16°) triangulation angle;
            street sequences walked along the camera axis (scenes-dev/lund) need it.
        mapper_trials: incremental mapping runs (next seed each) while fewer than half the images register;
            the run registering the most is kept.
        threads: CPU threads COLMAP may use.
        seed: random seed of the mapper.
        timeout: seconds one collection may take (0: no limit); a collection over the limit fails.
    """

    max_image_size: int = _S.sift_size
    max_features: int = _S.max_features
    matcher: str = _S.matcher
    overlap: int = _S.overlap
    min_model_size: int = _S.min_model_size
    min_num_matches: int = 15
    relaxed_init: bool = _S.relaxed_init
    mapper_trials: int = _S.mapper_trials
    threads: int = 2
    seed: int = _S.seed
    timeout: float = _S.timeout

    def check(self) -> SfmOptions:
        if self.matcher not in MATCHERS:
            raise UsageError(f"--matcher {self.matcher!r}: expected one of {', '.join(MATCHERS)}")
        if self.max_image_size < 64:
            raise UsageError(f"--sift-size {self.max_image_size}: use at least 64 pixels")
        if self.max_features < 64:
            raise UsageError(f"--max-features {self.max_features}: use at least 64")
        if self.min_model_size < 2:
            raise UsageError(f"--min-model-size {self.min_model_size}: a model needs at least 2 images")
        if self.mapper_trials < 1:
            raise UsageError(f"--mapper-trials {self.mapper_trials}: must be at least 1")
        if self.threads < 1:
            raise UsageError(f"--threads {self.threads}: must be at least 1")
        return self

    def database_key(self) -> dict:
        """The settings the features and matches depend on (a kept database is reused when they match)."""
        return {k: getattr(self, k) for k in ("max_image_size", "max_features", "matcher", "overlap")}

    def key(self) -> dict:
        """The settings a finished reconstruction must match to be reused."""
        d = asdict(self)
        for k in ("threads", "timeout"):
            d.pop(k)
        return d


def _names_digest(names: list[str]) -> str:
    return hashlib.sha1("\n".join(names).encode()).hexdigest()


def import_pycolmap():
    try:
        import pycolmap
    except ImportError:
        raise MissingDependencyError("sfm-mine needs pycolmap: pip install pycolmap") from None
    return pycolmap


def load_status(work_dir: str | os.PathLike, names: list[str], options: SfmOptions) -> dict | None:
    """The status of a finished reconstruction of exactly these images with these settings, else None."""
    path = Path(work_dir) / STATUS
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if status.get("options") != options.key() or status.get("names_sha1") != _names_digest(names):
        return None
    if status.get("state") not in ("done", "failed"):
        return None
    return status


def _write_status(work_dir: Path, status: dict) -> None:
    write_text(work_dir / STATUS, json.dumps(status, indent=1))


def _features_and_matches(pycolmap, db: Path, image_dir, names: list[str], options: SfmOptions) -> None:
    ext = pycolmap.FeatureExtractionOptions()
    ext.max_image_size = options.max_image_size
    ext.num_threads = options.threads
    ext.sift.max_num_features = options.max_features
    pycolmap.extract_features(db, image_dir, image_names=list(names), camera_mode=pycolmap.CameraMode.AUTO,
                              extraction_options=ext, device=pycolmap.Device.cpu)
    mopt = pycolmap.FeatureMatchingOptions()
    mopt.num_threads = options.threads
    if options.matcher == "exhaustive":
        pycolmap.match_exhaustive(db, matching_options=mopt, device=pycolmap.Device.cpu)
    else:
        popt = pycolmap.SequentialPairingOptions()
        popt.overlap = options.overlap
        pycolmap.match_sequential(db, matching_options=mopt, pairing_options=popt, device=pycolmap.Device.cpu)


def reconstruct(image_dir: str | os.PathLike, names: list[str], work_dir: str | os.PathLike,
                options: SfmOptions) -> dict:
    """Reconstruct ``names`` (relative to ``image_dir``) into ``work_dir`` in this process; return the status.

    A collection that yields no model is a ``failed`` status (with the reason), not an exception. The
    database of an earlier run is reused when it holds the same images with the same feature and matching
    settings (then only the mapping is redone).
    """
    pycolmap = import_pycolmap()
    options.check()
    work_dir = Path(work_dir)
    t0 = time.time()
    db_key = {**options.database_key(), "names_sha1": _names_digest(names)}
    try:
        reuse_db = json.loads((work_dir / "database.json").read_text()) == db_key
    except (OSError, ValueError):
        reuse_db = False
    stale_files = ("sparse", STATUS) if reuse_db else ("database.db", "database.json", "sparse", STATUS)
    for stale in stale_files:
        p = work_dir / stale
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    work_dir.mkdir(parents=True, exist_ok=True)
    status = {"state": "failed", "reason": "", "options": options.key(), "names_sha1": _names_digest(names),
              "images": len(names), "models": [], "database_reused": reuse_db}
    db = work_dir / "database.db"
    try:
        pycolmap.set_random_seed(options.seed)
        if not reuse_db:
            _features_and_matches(pycolmap, db, image_dir, names, options)
            write_text(work_dir / "database.json", json.dumps(db_key))
        mp = pycolmap.IncrementalPipelineOptions()
        mp.num_threads = options.threads
        mp.min_model_size = options.min_model_size
        mp.min_num_matches = options.min_num_matches
        mp.extract_colors = False
        mp.multiple_models = True
        if options.relaxed_init:
            mp.mapper.init_min_tri_angle = 4.0
            mp.mapper.init_max_forward_motion = 0.99
        # Incremental mapping depends on its random initial pair: when a try registers less than half of
        # the images, try again with the next seed (mapping is cheap next to features and matching).
        recs, best = {}, -1
        for trial in range(options.mapper_trials):
            mp.random_seed = options.seed + trial
            pycolmap.set_random_seed(options.seed + trial)
            out = work_dir / f"sparse.try{trial}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            got = pycolmap.incremental_mapping(db, image_dir, out, options=mp)
            shutil.rmtree(out, ignore_errors=True)
            reg = len({im.name for r in got.values() for im in r.images.values() if im.has_pose})
            if reg > best:
                recs, best = got, reg
            if 2 * best >= len(names):
                break
        status["mapper_trials"] = trial + 1
        (work_dir / "sparse").mkdir()
    except Exception as e:  # COLMAP raises plain RuntimeErrors / ValueErrors
        status["reason"] = f"COLMAP failed: {e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        status["seconds"] = round(time.time() - t0, 2)
        _write_status(work_dir, status)
        return status
    models = []
    for idx in sorted(recs):
        rec = recs[idx]
        sub = work_dir / "sparse" / str(idx)
        sub.mkdir(parents=True, exist_ok=True)
        rec.write(sub)
        models.append({"dir": f"sparse/{idx}", "registered": int(rec.num_reg_images()),
                       "points": int(rec.num_points3D())})
    models.sort(key=lambda m: -m["registered"])
    status["models"] = models
    if models:
        status["state"] = "done"
    else:
        status["reason"] = "no model: too few images match each other (textureless, unrelated or too few views)"
    status["seconds"] = round(time.time() - t0, 2)
    _write_status(work_dir, status)
    return status


def _worker(image_dir: str, names: list[str], work_dir: str, options: dict) -> None:
    # COLMAP logs through glog on the process's stderr: send it to a file in the work folder.
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    fd = os.open(Path(work_dir) / "colmap.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    reconstruct(image_dir, names, work_dir, SfmOptions(**options))


def reconstruct_isolated(image_dir: str | os.PathLike, names: list[str], work_dir: str | os.PathLike,
                         options: SfmOptions) -> dict:
    """:func:`reconstruct` in a child process (crash- and hang-proof); always returns a status."""
    import multiprocessing as mp

    import_pycolmap()
    options.check()
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / STATUS).unlink(missing_ok=True)
    t0 = time.time()
    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=_worker, args=(str(image_dir), list(names), str(work_dir), asdict(options)),
                       daemon=True)
    proc.start()
    proc.join(options.timeout if options.timeout > 0 else None)
    reason = None
    if proc.is_alive():
        proc.terminate()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()
        reason = f"timed out after {options.timeout:g} s (raise --timeout)"
    status = load_status(work_dir, names, options)
    if status is None:
        reason = reason or f"COLMAP crashed (exit code {proc.exitcode}); see {work_dir / 'colmap.log'}"
        status = {"state": "failed", "reason": reason, "options": options.key(),
                  "names_sha1": _names_digest(names), "images": len(names), "models": [],
                  "seconds": round(time.time() - t0, 2)}
        if "timed out" not in reason:
            _write_status(work_dir, status)  # a crash is final; a timeout is retried by the next run
    return status


def read_model(model_dir: str | os.PathLike) -> ModelObservations:
    """A COLMAP model folder as :class:`ModelObservations` (registered images only)."""
    pycolmap = import_pycolmap()
    rec = pycolmap.Reconstruction(str(model_dir))
    names, focal, obs_img, obs_pt, obs_depth = [], [], [], [], []
    xyz_of = {pid: p.xyz for pid, p in rec.points3D.items()}
    for k, iid in enumerate(sorted(rec.reg_image_ids())):
        im = rec.images[iid]
        names.append(im.name)
        focal.append(float(rec.cameras[im.camera_id].mean_focal_length()))
        pids = [p.point3D_id for p in im.points2D if p.has_point3D()]
        if not pids:
            continue
        M = np.asarray(im.cam_from_world().matrix())  # (3, 4)
        X = np.stack([xyz_of[p] for p in pids])
        depth = X @ M[2, :3] + M[2, 3]
        obs_img.append(np.full(len(pids), k, np.int64))
        obs_pt.append(np.asarray(pids, np.int64))
        obs_depth.append(depth)

    def cat(parts, dtype):
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    return ModelObservations(names, np.asarray(focal, np.float64), cat(obs_img, np.int64),
                             cat(obs_pt, np.int64), cat(obs_depth, np.float64))
