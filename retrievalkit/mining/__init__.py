"""Training data without human labels.

- :func:`retrievalkit.mining.sfm.sfm_mine` (``rkit sfm-mine``): pycolmap reconstructions per collection,
  positives sharing 3D points (:mod:`.positives`), one cluster per model (:mod:`.colmap`, :mod:`.collections`).
- :func:`retrievalkit.mining.manifold.manifold_mine` (``rkit manifold-mine``): Mining on Manifolds on a kNN graph.

Both write a tuples file (``retrievalkit.io.tuples``). Submodules are imported on use (pycolmap and torch are
only needed by the stage that uses them).
"""
