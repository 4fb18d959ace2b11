"""Reading torch weight files safely, and loading state dicts with useful error messages."""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from retrievalkit.errors import BadInputError, MissingInputError


def _numpy_globals() -> list:
    # cirtorch checkpoints keep learned whitening (meta['Lw']) as numpy arrays; allow exactly what rebuilding a
    # plain array needs, under both the numpy 1 and numpy 2 module names.
    core = getattr(np, "_core", None) or np.core
    reconstruct, scalar = core.multiarray._reconstruct, core.multiarray.scalar
    allowed: list = [np.ndarray, np.dtype, reconstruct, scalar]
    allowed += [(reconstruct, "numpy.core.multiarray._reconstruct"), (scalar, "numpy.core.multiarray.scalar")]
    allowed += [(reconstruct, "numpy._core.multiarray._reconstruct"), (scalar, "numpy._core.multiarray.scalar")]
    allowed += [type(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.int32, np.int64, np.uint8, bool)]
    return allowed


def load_torch_file(path: str | Path, what: str = "model file") -> object:
    """``torch.load`` a file onto the CPU with ``weights_only=True``: tensors, containers, numbers, strings and
    numpy arrays only, never code. ``what`` names the file's role in messages ("model file", "training state").

    Raises:
        BadInputError: missing, unreadable or corrupt file, or a file that holds any other Python object (a file
            that would run code when loaded is refused, not executed).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{what} {path} does not exist or is not a file")
    with open(path, "rb") as fh:
        if fh.read(8) == b"\x89HDF\r\n\x1a\n":
            raise BadInputError(f"{what} {path} is an HDF5 file (an rkit data file?), not a torch file")
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Weights only load failed" in str(e):
            found = re.search(r"GLOBAL ([\w.]+)", str(e))
            name = f" ({found.group(1)})" if found else ""
            raise BadInputError(
                f"{what} {path} holds Python objects besides weights{name} and is refused (loading it could run "
                f"code); if you trust its source, load it in Python and re-save its state_dict()") from None
        raise BadInputError(f"{what} {path} is corrupt or not a torch file ({e})") from None
    except Exception as e:  # torch raises RuntimeError, EOFError, zipfile errors, ... on damaged files
        raise BadInputError(f"cannot read {what} {path}: not a torch file or damaged "
                            f"({type(e).__name__}: {str(e)[:200]})") from None


def load_state_into(module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str | Path,
                    what: str = "model") -> None:
    """``load_state_dict`` that tolerates only missing BatchNorm ``num_batches_tracked`` counters (absent from
    files written by torch < 0.4.1) and otherwise raises :class:`BadInputError` naming ``source`` and the first
    mismatching keys or shapes."""
    own = module.state_dict()
    state = dict(state_dict)
    for key, value in own.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong_shape = [f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})"
                   for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong_shape:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
            if keys:
                more = f" (+{len(keys) - 5} more)" if len(keys) > 5 else ""
                parts.append(f"{label}: {', '.join(keys[:5])}{more}")
        raise BadInputError(f"weights in {source} do not fit the {what}: " + "; ".join(parts))
    module.load_state_dict(state, strict=True)
