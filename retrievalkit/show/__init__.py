"""``rkit show``: HTML reports of rankings, verified matches and copy-detection errors, and the plots.

- :func:`build_ranks_report`: one or several ranks files (+ ground truth, + locals for the matches view);
- :func:`build_copydetect_report`: a copy-detection result with its false positives and missed copies;
- :mod:`retrievalkit.show.plots`: precision-recall curves and AP histograms (also ``rkit evaluate --plot``).

Pages are self-contained: thumbnails and plots live in a ``<name>_files/`` folder beside the page, nothing is
fetched from a network.
"""

from retrievalkit.show.config import ShowConfig
from retrievalkit.show.copydetect import build_copydetect_report
from retrievalkit.show.retrieval import build_ranks_report

__all__ = ["ShowConfig", "build_copydetect_report", "build_ranks_report"]
