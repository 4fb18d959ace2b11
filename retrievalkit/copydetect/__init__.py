"""Copy detection (DISC21): descriptors suited to copies, score normalisation, local verification, submissions."""

from retrievalkit.copydetect.crops import VIEWS, combine_mean, describe_views, parse_views
from retrievalkit.copydetect.normalize import (
    augment_for_ip,
    augment_for_l2,
    background_similarity,
    normalized_search,
)
from retrievalkit.copydetect.pca import PCAWhitening, fit_pca_whitening
from retrievalkit.copydetect.stage import (
    Candidates,
    CopyDetectConfig,
    Side,
    aggregate_views,
    copy_detect,
    descriptor_track,
    extract_reference_shard,
    load_side,
    match_queries,
)
from retrievalkit.copydetect.submission import (
    Matches,
    image_ids,
    read_descriptors,
    select_matches,
    write_descriptors,
    write_matches_csv,
)
from retrievalkit.copydetect.verify import VerifyConfig, has_evidence, verification_bonus, verify_candidates

__all__ = [
    "VIEWS", "Candidates", "CopyDetectConfig", "Matches", "PCAWhitening", "Side", "VerifyConfig", "aggregate_views",
    "augment_for_ip", "augment_for_l2", "background_similarity", "combine_mean", "copy_detect", "describe_views",
    "descriptor_track", "extract_reference_shard", "fit_pca_whitening", "image_ids", "load_side", "match_queries",
    "has_evidence", "normalized_search", "parse_views", "read_descriptors", "select_matches", "verification_bonus",
    "verify_candidates", "write_descriptors", "write_matches_csv",
]
