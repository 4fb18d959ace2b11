"""Regional diffusion support: several vectors per image (``image_index``), scores pooled back to images."""

from __future__ import annotations

import numpy as np
import torch

from retrievalkit.configs.diffusion import POOLS
from retrievalkit.errors import UsageError


def pool_rows(F: torch.Tensor, owner: np.ndarray | None, n_images: int, mode: str = "max") -> torch.Tensor:
    """Pool (M, Q) region scores to (n_images, Q) image scores by ``max`` or ``sum`` over each image's rows.

    ``owner`` (M,) maps rows to images; ``None`` means one row per image (returned unchanged).
    Images without rows get -inf (max) or 0 (sum).
    """
    if owner is None:
        return F
    if mode not in POOLS:
        raise UsageError(f"--pool {mode!r}: expected one of {', '.join(POOLS)}")
    idx = torch.from_numpy(np.asarray(owner, dtype=np.int64)).to(F.device)[:, None].expand_as(F)
    if mode == "sum":
        return torch.zeros((n_images, F.shape[1]), dtype=F.dtype, device=F.device).scatter_add_(0, idx, F)
    out = torch.full((n_images, F.shape[1]), -torch.inf, dtype=F.dtype, device=F.device)
    return out.scatter_reduce_(0, idx, F, reduce="amax", include_self=True)
