"""The one device rule of the library and the CLI: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

torch is imported only when a CUDA question has to be answered, and not even then on a Linux machine without
an NVIDIA device node (where CUDA cannot be available), so commands that run on faiss and numpy alone never load it.
"""

from __future__ import annotations

import glob
import re
import sys

from retrievalkit.errors import MissingDependencyError, UsageError

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(device: object = "auto") -> str:
    """The device to run on, as a string torch and faiss understand.

    Args:
        device: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:N``, a ``torch.device``
            or None (= auto).
    Returns:
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    Raises:
        UsageError: an unknown spelling. MissingDependencyError (exit code 4): CUDA asked for on a machine
        without it.
    """
    name = str(device if device is not None else "auto").lower()
    if not _DEVICE.match(name):
        raise UsageError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")
    if name == "cpu":
        return name
    if name == "auto":
        return "cuda" if _cuda_available() else "cpu"
    if not _cuda_available():
        raise MissingDependencyError(f"--device {device}: CUDA is not available on this machine "
                                     "(torch CPU build or no GPU); use --device cpu")
    return name


def _cuda_available() -> bool:
    """``torch.cuda.is_available()``, without importing torch where the answer is plainly no: on Linux the CUDA
    driver needs a /dev/nvidia* device node (or /dev/dxg under WSL)."""
    if "torch" not in sys.modules and sys.platform.startswith("linux") and not glob.glob("/dev/nvidia*") \
            and not glob.glob("/dev/dxg"):
        return False
    import torch

    return torch.cuda.is_available()


__all__ = ["resolve_device"]
