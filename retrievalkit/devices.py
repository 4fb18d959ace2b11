"""The one device rule of the library and the CLI: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

torch is imported only when a CUDA question has to be answered, so commands that run on faiss and numpy
alone (``--device cpu``) never load it.
"""

from __future__ import annotations

import re

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
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise MissingDependencyError(f"--device {device}: CUDA is not available on this machine "
                                     "(torch CPU build or no GPU); use --device cpu")
    return name


__all__ = ["resolve_device"]
