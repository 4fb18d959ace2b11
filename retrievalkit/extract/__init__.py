"""Global and local descriptor extraction."""

from retrievalkit.extract.global_desc import extract_global
from retrievalkit.extract.merge import merge_features

__all__ = ["extract_global", "merge_features"]
