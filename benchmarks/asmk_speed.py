"""ASMK* speed: index build time, memory per image and query time at 1k / 10k / 100k images.

Synthetic local descriptors (clustered, 128-D, unit norm, ``--per-image`` each) stand in for real ones above
what the shared data holds; queries are noisy copies of database images, so each has a known best match.
Side by side: the PyPI ``asmk`` package (Jeníček & Tolias), when importable, on the same codebook and
parameters (binary, α = 3, τ = 0, multiple assignment 1 / 5, no idf): its ranking should agree with ours; and
rkit's previous scorer (gather, Hamming, a float64 power per posting, bincount; kept below as
``previous_scores``) on the same inverted file, whose scores ours must reproduce exactly.

The package is a benchmark-only peer, never a dependency of rkit: install it aside and point ``--asmk-path``
at it (it needs pyyaml; it builds a small C extension)::

    python -m pip install --no-deps --target scratch/asmk-pkg asmk==0.1.1 pyyaml
    python benchmarks/asmk_speed.py --asmk-path scratch/asmk-pkg            # 1k, 10k, 100k

or from its source (github.com/jenicek/asmk; its shipped ``cython/hamming.c`` predates Python 3.11, so
regenerate it with Cython first)::

    git clone https://github.com/jenicek/asmk scratch/asmk-src && cd scratch/asmk-src
    python -m cython -3 cython/hamming.pyx -o cython/hamming.c && python setup.py build_ext --inplace
    mkdir -p ../asmk-pkg && cp -r asmk ../asmk-pkg/ && cd ../..    # + pyyaml importable (pip --target)
    python benchmarks/asmk_speed.py --sizes 1000 --asmk-max 1000

Limits compared: build time counts quantisation + aggregation + sorting the inverted file (not k-means, timed
once); memory is the inverted file's arrays (postings, codes, offsets, norms) per database image; query time is
the mean over ``--queries`` query images (quantisation with 5 assignments + scoring + top-k).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # shared CPU: threads spinning on a busy machine cost more

import numpy as np  # noqa: E402

from retrievalkit.search.asmk import (  # noqa: E402
    InvertedFileBuilder,
    Quantizer,
    aggregate,
    query_scores,
    top_k,
    train_codebook,
    word_similarity,
)


def previous_scores(ivf, quantizer, descriptors, ma=5, alpha=3.0, tau=0.0):
    """rkit's scorer before issue 18: index arithmetic, row gathers of uint8 codes, a float64 power per
    posting. Kept as the reference the new scorer must reproduce."""
    scores = np.zeros(ivf.n_images, np.float64)
    words = quantizer.assign(descriptors, ma)
    _, qw, qc = aggregate(descriptors, words, np.zeros(descriptors.shape[0], np.int64), ivf.codebook, binary=True)
    starts, stops = ivf.word_offsets[qw], ivf.word_offsets[qw + 1]
    lengths = stops - starts
    total = int(lengths.sum())
    if total == 0:
        return scores
    owner = np.repeat(np.arange(qw.shape[0]), lengths)
    pos = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths) + np.repeat(starts, lengths)
    s = word_similarity(ivf.entry_codes[pos], qc[owner], ivf.dim, alpha, tau)
    scores = np.bincount(ivf.entry_images[pos], weights=s, minlength=ivf.n_images).astype(np.float64)
    return scores / np.sqrt(np.maximum(ivf.image_words, 1).astype(np.float64) * qw.shape[0])


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


def build_ours(codebook, data, n, chunk=2000):
    t0 = time.perf_counter()
    b = InvertedFileBuilder(codebook, ma=1)
    for a in range(0, n, chunk):
        b.add(*data.chunk(a, min(n, a + chunk)))
    ivf = b.finish()
    return ivf, time.perf_counter() - t0


def run_queries(scorer, ivf, codebook, queries, repeat):
    """Best of ``repeat`` passes over the queries (mean per query) and the last pass's top-10 and scores."""
    qz = Quantizer(codebook)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        res, full = [], []
        for _, qx in queries:
            s = scorer(ivf, qz, qx, ma=5)
            top = top_k(s, 10)
            res.append((top.ids, top.scores))
            full.append(s)
        best = min(best, (time.perf_counter() - t0) / len(queries))
    return best, res, full


def package(codebook, data, n, chunk=2000):
    """Build the package's inverted file; returns (build seconds, a scorer running one pass over queries)."""
    from asmk import codebook as cdb_pkg
    from asmk import index as idx_pkg
    from asmk import inverted_file as ivf_pkg
    from asmk import kernel as kern_pkg

    cdb = cdb_pkg.Codebook(idx_pkg.initialize_index(gpu_id=None), size=codebook.shape[0])
    cdb.index(codebook)
    kern = kern_pkg.ASMKKernel(cdb, binary=True)
    ivf = ivf_pkg.IVF.initialize_empty(codebook_size=codebook.shape[0], use_idf=False)
    t0 = time.perf_counter()
    for a in range(0, n, chunk):  # chunk by chunk, as ours (100k images at once would need 5 GB)
        x, off = data.chunk(a, min(n, a + chunk))
        imids = a + np.repeat(np.arange(off.shape[0] - 1), np.diff(off))
        des, words, ids = cdb.quantize(x, imids, multiple_assignment=1)
        ivf.add(*kern.aggregate(des, words, ids))
    build = time.perf_counter() - t0

    def sim(*a):
        return kern.similarity(*a, alpha=3.0, similarity_threshold=0.0)

    def one_pass(queries):
        t0 = time.perf_counter()
        res = []
        for _, qx in queries:
            d, w = cdb.quantize(qx, multiple_assignment=5)
            agg = kern.aggregate_image(d, w)
            ranks, scores = ivf.search(*agg, similarity_func=sim, topk=10)
            res.append((np.asarray(ranks), np.asarray(scores, np.float32)))
        return (time.perf_counter() - t0) / len(queries), res

    return build, one_pass


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
    ap.add_argument("--repeat", type=int, default=3,
                    help="alternating passes over the queries (ours, previous, package); the best of each is shown")
    ap.add_argument("--asmk-max", type=int, default=100000, help="largest size run with the asmk package")
    ap.add_argument("--asmk-path", default="", help="a folder holding the asmk package (pip install --target)")
    args = ap.parse_args()
    if args.asmk_path:
        sys.path.insert(0, args.asmk_path)
    data = Synthetic(per_image=args.per_image)
    t0 = time.perf_counter()
    train_x, _ = data.chunk(0, max(1, 40 * args.codebook_size // args.per_image))
    codebook = train_codebook(train_x, args.codebook_size, niter=10)
    print(f"codebook: {args.codebook_size} words, k-means on {train_x.shape[0]} descriptors in "
          f"{time.perf_counter() - t0:.1f} s; {args.per_image} descriptors per image, 128-D; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    try:
        import asmk  # noqa: F401

        have_pkg = True
    except ImportError:
        have_pkg = False
        print("the asmk package is not importable: its columns are left empty (see --asmk-path)")
    header = (f"{'images':>8} | {'build s':>8} {'pkg s':>8} | {'bytes/img':>9} | {'postings':>9} | "
              f"{'ours ms':>8} {'prev ms':>8} {'pkg ms':>8} | {'prev/ours':>9} {'pkg/ours':>8} | "
              f"{'=prev':>5} | {'top1 ok':>7} | {'agree@10':>8} {'max|Δs|':>8}")
    print(header)
    print("-" * len(header))
    for n in [int(s) for s in args.sizes.split(",")]:
        qids = np.linspace(0, n - 1, args.queries).astype(int)
        queries = [(int(i), data.image(int(i), noise=0.5, seed=1000 + int(i))) for i in qids]
        ivf, b = build_ours(codebook, data, n)
        use_pkg = have_pkg and n <= args.asmk_max
        if use_pkg:
            pb, pkg_pass = package(codebook, data, n)
        # both indexes built: time the scorers in alternating passes, so a load change hits all of them
        qt = pt = pq = float("inf")
        for _ in range(args.repeat):
            t, res, full = run_queries(query_scores, ivf, codebook, queries, 1)
            qt = min(qt, t)
            t, _, pfull = run_queries(previous_scores, ivf, codebook, queries, 1)
            pt = min(pt, t)
            if use_pkg:
                t, pres = pkg_pass(queries)
                pq = min(pq, t)
        same = all(np.array_equal(a, c) for a, c in zip(full, pfull))
        qz = Quantizer(codebook)
        words = [np.unique(qz.assign(qx, 5)) for _, qx in queries]
        post = np.mean([int((ivf.word_offsets[w + 1] - ivf.word_offsets[w]).sum()) for w in words])
        top1 = np.mean([r[0][0] == qi for r, (qi, _) in zip(res, queries)])
        row = f"{n:>8} | {b:>8.2f} "
        if use_pkg:
            s10, _, diff = agreement(res, pres)
            pkg = (f"{pb:>8.2f}", f"{pq * 1e3:>8.2f}", f"{pq / qt:>8.1f}", f"{s10:>8.2f} {diff:>8.1e}")
        else:
            pkg = (f"{'':>8}", f"{'':>8}", f"{'':>8}", f"{'':>8} {'':>8}")
        row += (f"{pkg[0]} | {ivf.nbytes() / n:>9.0f} | {post:>9.0f} | {qt * 1e3:>8.2f} {pt * 1e3:>8.2f} {pkg[1]} | "
                f"{pt / qt:>9.1f} {pkg[2]} | {'yes' if same else 'NO':>5} | {top1:>7.2f} | {pkg[3]}")
        print(row, flush=True)
    print("ms: mean per query (quantisation, aggregation, scoring, top-10), best of --repeat alternating passes. "
          "prev/ours, pkg/ours: time ratios (>1: ours faster). =prev: our scores equal the previous scorer's "
          "bit for bit. agree@10: share of queries whose top-10 lists equal the package's; max|Δs|: largest "
          "top-10 score difference to it. postings: mean postings a query touches.")


if __name__ == "__main__":
    main()
