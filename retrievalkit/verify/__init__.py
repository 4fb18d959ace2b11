"""Geometric verification: tentative matches, RANSAC, and re-ranking a shortlist by inliers."""

from retrievalkit.verify.geometry import MIN_MATCHES, match_descriptors, verify_pair

__all__ = ["MIN_MATCHES", "match_descriptors", "verify_pair"]
