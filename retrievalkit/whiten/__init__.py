"""PCA whitening and learned (supervised) whitening of global descriptors.

Cores: :func:`pca_whitening`, :func:`learned_whitening`, :func:`apply_whitening` (arrays in, arrays out);
file: :func:`read_whitening`, :func:`write_whitening`, :func:`load_whitening` (-> (mean, proj));
stages: :func:`learn_whitening`, :func:`apply_whitening_file`.
"""

from retrievalkit.whiten.core import apply_whitening, learned_whitening, pca_whitening
from retrievalkit.whiten.stage import apply_whitening_file, learn_whitening, match_names
from retrievalkit.whiten.whitening_file import Whitening, load_whitening, read_whitening, write_whitening

__all__ = ["Whitening", "apply_whitening", "apply_whitening_file", "learn_whitening", "learned_whitening",
           "load_whitening", "match_names", "pca_whitening", "read_whitening", "write_whitening"]
