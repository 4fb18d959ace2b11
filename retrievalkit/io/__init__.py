"""One reader/writer pair per file kind, with schema checks; one write path (output.py: checked, locked, atomic
outputs) and one safe loader of user pickles (pickles.py)."""

from retrievalkit.io.features import Features, FeaturesWriter, read_features, write_features
from retrievalkit.io.h5file import atomic_h5, check_same_names, open_checked
from retrievalkit.io.knn import KnnGraph, read_knn, write_knn
from retrievalkit.io.output import atomic_file, check_output, claim_outputs, partial_path, write_text, writes_output
from retrievalkit.io.pickles import load_pickle
from retrievalkit.io.ranks import Ranks, read_ranks, write_ranks

__all__ = [
    "Features", "FeaturesWriter", "read_features", "write_features",
    "KnnGraph", "read_knn", "write_knn", "Ranks", "read_ranks", "write_ranks",
    "atomic_h5", "open_checked", "partial_path", "check_same_names",
    "atomic_file", "check_output", "claim_outputs", "write_text", "writes_output", "load_pickle",
]
