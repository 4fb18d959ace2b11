"""ASMK* — the Aggregated Selective Match Kernel with binarised residuals (Tolias, Avrithis & Jégou, ICCV 2013).

One concern per module:

- :mod:`~retrievalkit.search.asmk.codebook`: the k-means codebook (faiss) and nearest-word assignment;
- :mod:`~retrievalkit.search.asmk.kernel`: binarised aggregated residuals, the selectivity σ(u) = u^α (u ≥ τ);
- :mod:`~retrievalkit.search.asmk.ivf`: the inverted file, built chunk by chunk, and query scoring;
- :mod:`~retrievalkit.search.asmk.stage`: ``build_asmk`` / ``search_asmk_files``, locals files in, one file out.

The file kind (``rkit/asmk``) and the in-memory :class:`InvertedFile` are in :mod:`retrievalkit.io.asmk`.
faiss is used for k-means and assignment (faiss is imported only under ``retrievalkit/search``).
"""

from retrievalkit.search.asmk.codebook import Quantizer, auto_codebook_size, train_codebook
from retrievalkit.search.asmk.ivf import (
    DEFAULT_MA_DB,
    DEFAULT_MA_QUERY,
    InvertedFile,
    InvertedFileBuilder,
    build_inverted_file,
    query_scores,
    search_asmk,
    top_k,
)
from retrievalkit.search.asmk.kernel import (
    DEFAULT_ALPHA,
    DEFAULT_TAU,
    aggregate,
    hamming_packed,
    pack_bits,
    selectivity,
    unpack_bits,
    word_similarity,
)
from retrievalkit.search.asmk.stage import build_asmk, search_asmk_files

__all__ = ["DEFAULT_ALPHA", "DEFAULT_TAU", "DEFAULT_MA_DB", "DEFAULT_MA_QUERY", "auto_codebook_size",
           "train_codebook", "Quantizer", "pack_bits", "unpack_bits", "hamming_packed", "selectivity",
           "word_similarity", "aggregate", "InvertedFile", "InvertedFileBuilder", "build_inverted_file",
           "query_scores", "top_k", "search_asmk", "build_asmk", "search_asmk_files"]
