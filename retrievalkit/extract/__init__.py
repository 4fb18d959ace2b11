"""Global and local descriptor extraction.

- :mod:`.global_desc`: CNN global descriptors (``extract_global``); :mod:`.merge`: joining shards;
  :mod:`.distributed`: one shard per torchrun process.
- :mod:`.local_desc`: the local-features stage (``extract_local``); :mod:`.local_deep`: HOW-style deep
  locals (feature taps declared by the backbone registry); :mod:`.sift`: SIFT / RootSIFT.

The names below load their modules on first use, so that importing :mod:`retrievalkit.extract.sift` (SIFT
only, used by verification) does not import torch.
"""

from __future__ import annotations

import importlib

_LAZY = {"extract_global": "retrievalkit.extract.global_desc", "merge_features": "retrievalkit.extract.merge",
         "extract_local": "retrievalkit.extract.local_desc"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'retrievalkit.extract' has no attribute {name!r}")


__all__ = ["extract_global", "extract_local", "merge_features"]
