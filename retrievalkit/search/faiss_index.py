"""faiss indexes beyond exact search: factory strings, training, merging parts, search parameters, GPUs.

Arrays in, arrays out; files are the business of ``search/index_stages.py``. Every index uses the inner-product
metric (rkit vectors are L2-normalised, so inner product = cosine). Scores of missing results are ``-inf`` and
their ids ``-1``.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from retrievalkit.errors import BadInputError, MissingDependencyError, UsageError

#: below this many vectors the default index is exact (Flat)
FLAT_BELOW = 50_000
#: from this many vectors on the default index compresses the vectors (IVF-PQ) instead of storing them (IVF-Flat)
PQ_FROM = 1_000_000


def default_nlist(n: int) -> int:
    """Inverted lists for ``n`` vectors: the power of two nearest 4·√n (at least 1)."""
    return max(1, 2 ** round(math.log2(max(1.0, 4 * math.sqrt(n)))))


def default_pq_m(d: int) -> int:
    """Sub-quantizers of a PQ code: the largest divisor of ``d`` not above min(64, d/2)."""
    cap = max(1, min(64, d // 2))
    return max(m for m in range(1, cap + 1) if d % m == 0)


def default_factory(n: int, d: int) -> str:
    """The factory string used when none is given, from the number and dimension of the vectors.

    ``Flat`` (exact) below 50k vectors; ``IVF{nlist},Flat`` up to 1M; ``IVF{nlist},PQ{m}`` from 1M on
    (m = largest divisor of d ≤ min(64, d/2), 8 bits each: m bytes a vector; re-rank with ``--shortlist``), with
    nlist the power of two nearest 4·√N.
    """
    if n < FLAT_BELOW:
        return "Flat"
    nlist = default_nlist(n)
    if n < PQ_FROM:
        return f"IVF{nlist},Flat"
    return f"IVF{nlist},PQ{default_pq_m(d)}"


def default_train_size(index, n: int) -> int:
    """Training vectors drawn when ``--train-size`` is not given: 50 per inverted list and at least 256·39 for
    PQ codebooks, at least 100k, at most N."""
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    need = 100_000
    if ivf is not None:
        need = max(need, 50 * ivf.nlist)
    return min(n, need)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """faiss's C++ code prints some notes with printf; stdout carries only data, so send them to stderr."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):  # no real stdout (captured): nothing to protect
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def make_index(factory: str, d: int):
    """A fresh (untrained) inner-product faiss index from a factory string; a bad string is a usage error."""
    import faiss

    factory = factory.strip()
    if not factory:
        raise UsageError("--factory: empty factory string; e.g. Flat, IVF4096,Flat, IVF4096,PQ32, HNSW32")
    if "IDMap" in factory:
        raise UsageError(f"--factory {factory!r}: rkit maps ids to names itself; drop IDMap")
    try:
        with stdout_to_stderr():
            index = faiss.index_factory(int(d), factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        why = " ".join(str(e).split())
        why = why.rsplit("failed: ", 1)[-1] if "failed: " in why else why.rsplit(": ", 1)[-1]
        raise UsageError(f"--factory {factory!r} is not a valid faiss factory string for dimension {d} "
                         f"({why[:160]}); e.g. Flat, IVF4096,Flat, IVF4096,PQ32, OPQ32,IVF4096,PQ32, "
                         "HNSW32") from None
    return index


def family(index) -> str:
    """``flat``, ``ivf``, ``hnsw`` or ``other`` (what merging, parameters and GPUs can do with it)."""
    import faiss

    if faiss.try_extract_index_ivf(index) is not None:
        return "ivf"
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexPreTransform) else index
    if isinstance(inner, faiss.IndexHNSW):
        return "hnsw"
    if isinstance(inner, faiss.IndexFlat):
        return "flat"
    return "other"


def train(index, xt: np.ndarray, seed: int = 0) -> str | None:
    """Train ``index`` on the (n, d) sample ``xt``. Returns a note when the sample is smaller than faiss asks."""
    import faiss

    if index.is_trained:
        return None
    note = None
    ivf = faiss.try_extract_index_ivf(index)
    cps = []
    if ivf is not None:
        cps.append(("inverted lists", ivf.nlist, ivf.cp))
        ivf = faiss.downcast_index(ivf)
        if hasattr(ivf, "pq"):
            cps.append(("PQ codebooks", 1 << ivf.pq.nbits, ivf.pq.cp))
        if hasattr(ivf, "do_polysemous_training"):
            # the factory turns it on; it only serves Hamming pre-filtering (polysemous_ht), which rkit never
            # sets, and costs minutes
            ivf.do_polysemous_training = False
    for what, k, cp in cps:
        cp.seed = int(seed)
        if xt.shape[0] < k:
            raise BadInputError(f"{xt.shape[0]} training vectors for {k} {what}: use a smaller factory "
                                "(fewer lists) or a larger --train-size")
        if xt.shape[0] < 39 * k:
            note = (f"note: {xt.shape[0]} training vectors for {k} {what} (faiss suggests ≥ {39 * k}); "
                    "raise --train-size for better clusters")
            cp.min_points_per_centroid = 1  # the note above replaces faiss's own warning lines
    with stdout_to_stderr():
        index.train(np.ascontiguousarray(xt, dtype=np.float32))
    return note


def serialize(index) -> np.ndarray:
    import faiss

    return faiss.serialize_index(index)


def index_id(data: np.ndarray) -> str:
    """A short hash of serialized index bytes (identifies the trained index that parts share)."""
    return hashlib.sha256(memoryview(np.ascontiguousarray(data))).hexdigest()[:32]


def deserialize(data: np.ndarray, ivfdata: Path | None = None):
    """The faiss index of serialized bytes. ``ivfdata``: the on-disk inverted lists file it refers to.

    faiss finds on-disk lists by name in the index's own folder; a temporary folder with a link to
    ``ivfdata`` lets the file live wherever the rkit index file is (the lists are memory-mapped, not read).
    """
    import faiss

    if ivfdata is None:
        try:
            return faiss.deserialize_index(np.ascontiguousarray(data))
        except RuntimeError as e:
            raise BadInputError(f"not a faiss index this faiss ({faiss.__version__}) can read: "
                                f"{str(e).strip().splitlines()[-1][:160]}") from None
    if not ivfdata.exists():
        raise BadInputError(f"{ivfdata}: the on-disk inverted lists of this index are missing; keep the "
                            ".ivfdata file beside the index file")
    with tempfile.TemporaryDirectory(prefix="rkit-index-") as td:
        os.symlink(ivfdata.resolve(), Path(td) / ivfdata.name)
        (Path(td) / "index.faiss").write_bytes(memoryview(np.ascontiguousarray(data)))
        with stdout_to_stderr():
            return faiss.read_index(str(Path(td) / "index.faiss"), faiss.IO_FLAG_ONDISK_SAME_DIR)


def merge_into(target, other, n_before: int) -> None:
    """Append ``other``'s vectors to ``target`` (same trained index); ids of ``other`` are shifted by
    ``n_before`` (= target.ntotal) so they stay positions in the concatenation.

    IVF: faiss's inverted-list merge (codes copied, nothing re-encoded); Flat: codes concatenated; HNSW and other
    kinds: ``other``'s vectors are reconstructed and added (the graph is extended; lossy storage stays lossy).
    """
    import faiss

    if family(target) == "ivf":
        tivf, oivf = faiss.extract_index_ivf(target), faiss.extract_index_ivf(other)
        tivf.merge_from(oivf, n_before)
        target.ntotal = tivf.ntotal
        return
    try:  # Flat codes (and what else faiss can merge) are appended as they are
        target.merge_from(other, 0)
        return
    except RuntimeError:
        pass
    if other.ntotal == 0:
        return
    if isinstance(other, faiss.IndexPreTransform):
        raise BadInputError("parts of a transformed non-IVF index cannot be merged; search them together "
                            "(rkit index search --index part...)")
    try:
        x = other.reconstruct_n(0, other.ntotal)
    except RuntimeError:
        raise BadInputError("this kind of index can neither merge nor reconstruct its vectors; build it in one "
                            "go, or search the parts together (rkit index search --index part...)") from None
    target.add(x)


def merge_ondisk(trained, parts: list, ivfdata: Path) -> object:
    """One IVF index whose inverted lists are written to ``ivfdata`` (memory-mapped when searched) from the
    parts' lists, ids shifted by the parts' sizes; RAM holds one part at a time plus the list bookkeeping."""
    import faiss

    ivf = faiss.try_extract_index_ivf(trained)
    if ivf is None:
        raise UsageError("--on-disk: only IVF indexes have inverted lists to keep on disk")
    invlists = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, str(ivfdata))
    vec = faiss.InvertedListsPtrVector()
    for p in parts:
        vec.push_back(faiss.extract_index_ivf(p).invlists)
    with stdout_to_stderr():
        ntotal = invlists.merge_from_multiple(vec.data(), vec.size(), True)
    ivf.replace_invlists(invlists, True)
    invlists.this.disown()
    ivf.ntotal = trained.ntotal = ntotal
    return trained


def set_search_params(index, nprobe: int | None, ef: int | None, k: int) -> dict:
    """Apply ``nprobe`` (IVF) / ``ef`` (HNSW efSearch) and return the values used.

    Defaults: nprobe = nlist/64 within [8, nlist]; efSearch = max(64, k). A parameter the index does not have is a
    usage error (options that do not apply are refused).
    """
    import faiss

    fam = family(index)
    used: dict = {}
    ps = faiss.ParameterSpace()
    if nprobe is not None and fam != "ivf":
        raise UsageError(f"--nprobe applies to IVF indexes; this one is {fam}")
    if ef is not None and fam != "hnsw":
        raise UsageError(f"--ef applies to HNSW indexes; this one is {fam}")
    if fam == "ivf":
        nlist = faiss.extract_index_ivf(index).nlist
        if nprobe is None:
            nprobe = min(nlist, max(8, nlist // 64))
        if nprobe < 1:
            raise UsageError(f"--nprobe {nprobe}: must be at least 1")
        used["nprobe"] = min(int(nprobe), nlist)
        ps.set_index_parameter(index, "nprobe", used["nprobe"])
    if fam == "hnsw":
        if ef is None:
            ef = max(64, k)
        if ef < 1:
            raise UsageError(f"--ef {ef}: must be at least 1")
        used["ef"] = int(ef)
        ps.set_index_parameter(index, "efSearch", used["ef"])
    return used


def search_blocks(index, xq: np.ndarray, k: int, block_size: int = 4096,
                  progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``index.search`` in query blocks. Returns (D (Q, k) float32 with -inf where missing, I (Q, k) int64)."""
    q = xq.shape[0]
    D = np.full((q, k), -np.inf, dtype=np.float32)
    I = np.full((q, k), -1, dtype=np.int64)
    if index.ntotal == 0 or q == 0:
        return D, I
    for s in range(0, q, block_size):
        e = min(s + block_size, q)
        d, i = index.search(np.ascontiguousarray(xq[s:e], dtype=np.float32), k)
        d[i < 0] = -np.inf
        D[s:e], I[s:e] = d, i
        if progress:
            progress(e - s)
    return D, I


def merge_topk(results: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` of several result lists over disjoint id ranges (ids already global).

    Ties are broken by the smaller id, as one exact search over the concatenation would.
    """
    D = np.concatenate([d for d, _ in results], 1)
    I = np.concatenate([i for _, i in results], 1)
    key_id = np.where(I < 0, np.iinfo(np.int64).max, I)
    order = np.lexsort((key_id, -D.astype(np.float64)), axis=1)[:, :k]
    D, I = np.take_along_axis(D, order, 1), np.take_along_axis(I, order, 1)
    if D.shape[1] < k:
        pad = k - D.shape[1]
        D = np.pad(D, ((0, 0), (0, pad)), constant_values=-np.inf)
        I = np.pad(I, ((0, 0), (0, pad)), constant_values=-1)
    return D, I


def rerank(xq: np.ndarray, I: np.ndarray, fetch: Callable[[np.ndarray], np.ndarray],
           k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner products of each query with its shortlist ``I`` (Q, S) and the best ``k`` of them.

    ``fetch(ids)`` returns the original database vectors of ``ids`` (any order, repeats allowed; e.g.
    ``FeaturesStream.take``); one call per 256 queries, which bounds the (queries, shortlist, D) gather.
    """
    valid = I >= 0
    S = np.full(I.shape, -np.inf, dtype=np.float32)
    xq = np.asarray(xq, dtype=np.float32)
    for s in range(0, I.shape[0], 256):
        e = min(s + 256, I.shape[0])
        ids = np.where(valid[s:e], I[s:e], 0)
        xb = fetch(ids.reshape(-1)).reshape(e - s, I.shape[1], -1)
        exact = np.einsum("qd,qsd->qs", xq[s:e], xb)
        S[s:e] = np.where(valid[s:e], exact, -np.inf)
    return merge_topk([(S, I)], k)


def gpu_count() -> int:
    """GPUs faiss can use (0 with faiss-cpu)."""
    import faiss

    return int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0


def plan_device(device: str, fam: str) -> str:
    """Where a faiss index runs for ``--device``: ``cpu``, ``faiss-gpu`` (all GPUs for ``cuda``, GPU N for
    ``cuda:N``) or ``torch`` (exact Flat search with torch on CUDA when faiss has no GPU support).

    CUDA asked and neither faiss-gpu nor a CUDA torch available: MissingDependencyError (exit 4).
    """
    device = (device or "cpu").lower()
    if device == "cpu":
        return "cpu"
    if device == "auto":
        if gpu_count() > 0 and fam in ("flat", "ivf"):
            return "faiss-gpu"
        return "cpu"
    if not device.startswith("cuda"):
        raise UsageError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")
    if gpu_count() > 0:
        if fam not in ("flat", "ivf"):
            raise UsageError(f"--device {device}: faiss has no GPU version of this {fam} index; use --device cpu "
                             "or a Flat/IVF factory")
        return "faiss-gpu"
    import torch

    if fam == "flat" and torch.cuda.is_available():
        return "torch"
    if torch.cuda.is_available():
        raise MissingDependencyError(f"--device {device}: this {fam} index needs faiss-gpu on CUDA, which is not "
                                     "installed (pip install faiss-gpu-cu12); use --device cpu")
    raise MissingDependencyError(f"--device {device}: neither faiss-gpu nor a CUDA torch is available on this "
                                 "machine; use --device cpu")


def to_gpu(index, device: str, shard: bool = False):
    """A GPU copy of ``index``: ``cuda:N`` on GPU N; ``cuda`` on all GPUs, replicated (each GPU holds everything,
    queries are split) or, with ``shard``, sharded (each GPU holds a slice of the database)."""
    import faiss

    if device.startswith("cuda:"):
        res = faiss.StandardGpuResources()
        return faiss.index_cpu_to_gpu(res, int(device.split(":", 1)[1]), index)
    co = faiss.GpuMultipleClonerOptions()
    co.shard = bool(shard)
    return faiss.index_cpu_to_all_gpus(index, co=co)


def to_cpu(index):
    import faiss

    return faiss.index_gpu_to_cpu(index) if gpu_count() > 0 else index


def flat_vectors(index) -> np.ndarray:
    """The stored vectors of a plain Flat index (for the torch fallback on CUDA)."""
    import faiss

    return faiss.rev_swig_ptr(faiss.downcast_index(index).get_xb(), index.ntotal * index.d).reshape(
        index.ntotal, index.d).copy()
