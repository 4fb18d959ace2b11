"""Evaluation core: revisitop retrieval metrics and DISC21 copy-detection metrics (arrays in, numbers out)."""

from retrievalkit.evaluate.copydetect import (
    CopyDetectionMetrics,
    CopyGroundTruth,
    Predictions,
    descriptor_track_predictions,
    evaluate_copy_detection,
    read_ground_truth_csv,
    read_predictions_csv,
)
from retrievalkit.evaluate.groundtruth import PROTOCOLS, GroundTruth, load_gnd
from retrievalkit.evaluate.retrieval import (
    ProtocolResult,
    RetrievalMetrics,
    compute_ap,
    compute_map,
    evaluate_retrieval,
)

__all__ = [
    "PROTOCOLS",
    "CopyDetectionMetrics",
    "CopyGroundTruth",
    "GroundTruth",
    "Predictions",
    "ProtocolResult",
    "RetrievalMetrics",
    "compute_ap",
    "compute_map",
    "descriptor_track_predictions",
    "evaluate_copy_detection",
    "evaluate_retrieval",
    "load_gnd",
    "read_ground_truth_csv",
    "read_predictions_csv",
]
