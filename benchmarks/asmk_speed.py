"""ASMK* speed: index build time, memory per image and query time at 1k / 10k / 100k images.

Synthetic local descriptors (clustered, 128-D, unit norm, ``--per-image`` each) stand in for real ones above
what the shared data holds; queries are noisy copies of database images, so each has a known best match.
Side by side: the PyPI ``asmk`` package (Jeníček & Tolias), when importable, on the same codebook and
parameters (binary, α = 3, τ = 0, multiple assignment 1 / 5, no idf): its ranking should agree with ours.

    .venv/bin/python benchmarks/asmk_speed.py                     # 1k, 10k, 100k
    .venv/bin/python benchmarks/asmk_speed.py --sizes 1000 --asmk-max 1000

Limits compared: build time counts quantisation + aggregation + sorting the inverted file (not k-means, timed
once); memory is the inverted file's arrays (postings, codes, offsets, norms) per database image; query time is
the mean over ``--queries`` query images (quantisation with 5 assignments + scoring + top-k).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # shared CPU: threads spinning on a busy machine cost more

import numpy as np  # noqa: E402

from retrievalkit.search.asmk import (  # noqa: E402
    InvertedFileBuilder,
    Quantizer,
    query_scores,
    top_k,
    train_codebook,
)


class Synthetic:
    """Clustered unit descriptors: image i draws its descriptors around ``topics`` seeded by i."""

    def __init__(self, dim=128, n_topics=20000, per_image=100, seed=0):
        rng = np.random.default_rng(seed)
        self.centers = rng.standard_normal((n_topics, dim)).astype(np.float32)
        self.centers /= np.linalg.norm(self.centers, axis=1, keepdims=True)
        self.per_image, self.dim = per_image, dim

    def image(self, i, noise=0.0, seed=None):
        rng = np.random.default_rng(i)
        t = rng.integers(0, self.centers.shape[0], self.per_image)
        x = self.centers[t] + 0.1 * rng.standard_normal((self.per_image, self.dim)).astype(np.float32)
        if noise:  # a query: the same image, perturbed
            x = x + noise * 0.1 * np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32)
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    def chunk(self, a, b):
        xs = [self.image(i) for i in range(a, b)]
        return np.concatenate(xs), np.arange(0, (b - a + 1) * self.per_image, self.per_image)


def ours(codebook, data, n, queries, chunk=2000):
    t0 = time.perf_counter()
    b = InvertedFileBuilder(codebook, ma=1)
    for a in range(0, n, chunk):
        b.add(*data.chunk(a, min(n, a + chunk)))
    ivf = b.finish()
    build = time.perf_counter() - t0
    qz = Quantizer(codebook)
    t0 = time.perf_counter()
    res = []
    for _, qx in queries:
        s = query_scores(ivf, qz, qx, ma=5)
        best = top_k(s, 10)
        res.append((best.ids, best.scores))
    qtime = (time.perf_counter() - t0) / len(queries)
    return build, ivf.nbytes() / n, qtime, res


def package(codebook, data, n, queries):
    from asmk import codebook as cdb_pkg
    from asmk import index as idx_pkg
    from asmk import inverted_file as ivf_pkg
    from asmk import kernel as kern_pkg

    cdb = cdb_pkg.Codebook(idx_pkg.initialize_index(gpu_id=None), size=codebook.shape[0])
    cdb.index(codebook)
    kern = kern_pkg.ASMKKernel(cdb, binary=True)
    ivf = ivf_pkg.IVF.initialize_empty(codebook_size=codebook.shape[0], use_idf=False)
    t0 = time.perf_counter()
    x, off = data.chunk(0, n)
    imids = np.repeat(np.arange(n), np.diff(off))
    des, words, ids = cdb.quantize(x, imids, multiple_assignment=1)
    ivf.add(*kern.aggregate(des, words, ids))
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = []
    for _, qx in queries:
        d, w = cdb.quantize(qx, multiple_assignment=5)
        agg = kern.aggregate_image(d, w)

        def sim(*a):
            return kern.similarity(*a, alpha=3.0, similarity_threshold=0.0)

        ranks, scores = ivf.search(*agg, similarity_func=sim, topk=10)
        res.append((np.asarray(ranks), np.asarray(scores, np.float32)))
    qtime = (time.perf_counter() - t0) / len(queries)
    return build, None, qtime, res


def agreement(a, b):
    """Share of identical top-10 lists, identical top-1, and the largest score difference."""
    same10 = np.mean([np.array_equal(x[0][:10], y[0][:10]) for x, y in zip(a, b)])
    same1 = np.mean([x[0][0] == y[0][0] for x, y in zip(a, b)])
    diff = max(float(np.abs(x[1][:10] - y[1][:10]).max()) for x, y in zip(a, b))
    return same10, same1, diff


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--per-image", type=int, default=100, help="local descriptors per database image")
    ap.add_argument("--codebook-size", type=int, default=1024)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--asmk-max", type=int, default=10000, help="largest size run with the asmk package")
    args = ap.parse_args()
    data = Synthetic(per_image=args.per_image)
    t0 = time.perf_counter()
    train_x, _ = data.chunk(0, max(1, 40 * args.codebook_size // args.per_image))
    codebook = train_codebook(train_x, args.codebook_size, niter=10)
    print(f"codebook: {args.codebook_size} words, k-means on {train_x.shape[0]} descriptors in "
          f"{time.perf_counter() - t0:.1f} s; {args.per_image} descriptors per image, 128-D")
    try:
        import asmk  # noqa: F401

        have_pkg = True
    except ImportError:
        have_pkg = False
        print("the asmk package is not installed: its columns are left empty (pip install asmk)")
    header = (f"{'images':>8} | {'build s':>8} {'pkg s':>8} {'ratio':>6} | {'bytes/img':>9} | "
              f"{'query ms':>8} {'pkg ms':>8} {'ratio':>6} | {'top1 ok':>7} | {'agree@10':>8} {'max|Δs|':>8}")
    print(header)
    print("-" * len(header))
    for n in [int(s) for s in args.sizes.split(",")]:
        qids = np.linspace(0, n - 1, args.queries).astype(int)
        queries = [(int(i), data.image(int(i), noise=0.5, seed=1000 + int(i))) for i in qids]
        b, mem, qt, res = ours(codebook, data, n, queries)
        top1 = np.mean([r[0][0] == qi for r, (qi, _) in zip(res, queries)])
        row = f"{n:>8} | {b:>8.2f} "
        if have_pkg and n <= args.asmk_max:
            pb, _, pq, pres = package(codebook, data, n, queries)
            s10, s1, diff = agreement(res, pres)
            row += (f"{pb:>8.2f} {pb / b:>6.1f} | {mem:>9.0f} | {qt * 1e3:>8.2f} {pq * 1e3:>8.2f} {pq / qt:>6.1f} | "
                    f"{top1:>7.2f} | {s10:>8.2f} {diff:>8.1e}")
        else:
            row += f"{'':>8} {'':>6} | {mem:>9.0f} | {qt * 1e3:>8.2f} {'':>8} {'':>6} | {top1:>7.2f} |"
        print(row, flush=True)
    print("ratio = asmk package time / ours (>1: ours faster). agree@10: share of queries whose top-10 lists are "
          "identical; max|Δs|: largest top-10 score difference.")


if __name__ == "__main__":
    main()
