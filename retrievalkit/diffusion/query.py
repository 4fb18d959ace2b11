"""Query-side right-hand sides: a new query enters the graph only through its k nearest database items.

``y[j] = max(s_j, 0) ** gamma`` for the query's k nearest database vectors j (similarity s_j), 0 elsewhere,
so queries are never inserted into the graph and the graph never has to be rebuilt for them.
"""

from __future__ import annotations

import numpy as np
import torch


def query_weights(scores: np.ndarray, gamma: float = 3.0) -> np.ndarray:
    """(Q, k) similarities -> (Q, k) right-hand-side weights ``max(s, 0) ** gamma``."""
    return np.power(np.maximum(np.asarray(scores, dtype=np.float32), 0.0), gamma, dtype=np.float32)


def dense_rhs(nn_idx: np.ndarray, nn_w: np.ndarray, n: int, owners: np.ndarray | None = None,
              n_cols: int | None = None, device: str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Dense right-hand sides Y (n, Q) with ``Y[nn_idx[q, j], q] += nn_w[q, j]`` (-1 ids ignored).

    ``owners`` (regional queries): row q of ``nn_idx`` belongs to column ``owners[q]`` of ``n_cols``
    (several query regions add up into one column per query image).
    """
    nn_idx = np.asarray(nn_idx, dtype=np.int64)
    rows = nn_idx.reshape(-1)
    q = np.repeat(np.arange(nn_idx.shape[0]) if owners is None else np.asarray(owners, np.int64), nn_idx.shape[1])
    w = np.asarray(nn_w, dtype=np.float32).reshape(-1)
    ok = rows >= 0
    cols = n_cols if n_cols is not None else nn_idx.shape[0]
    Y = torch.zeros((n, cols), dtype=dtype, device=device)
    Y.index_put_((torch.from_numpy(rows[ok]).to(device), torch.from_numpy(q[ok]).to(device)),
                 torch.from_numpy(w[ok]).to(device=device, dtype=dtype), accumulate=True)
    return Y
