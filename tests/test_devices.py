"""One device rule for the library and the CLI; torch is loaded only to answer a CUDA question."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from retrievalkit.devices import resolve_device
from retrievalkit.errors import MissingDependencyError, UsageError


def test_spellings():
    assert resolve_device("cpu") == "cpu" and resolve_device("CPU") == "cpu"
    assert resolve_device(None) in ("cpu", "cuda") and resolve_device("auto") in ("cpu", "cuda")
    for bad in ("gpu", "cuda:x", "cuda:", "tpu"):
        with pytest.raises(UsageError, match="expected auto, cpu, cuda or cuda:N"):
            resolve_device(bad)


def test_cuda_without_cuda_is_a_missing_dependency():
    import torch

    if torch.cuda.is_available():
        assert resolve_device("cuda:0") == "cuda:0"
    else:
        with pytest.raises(MissingDependencyError, match="--device cpu"):
            resolve_device("cuda")


def test_cpu_does_not_import_torch():
    code = ("import sys; from retrievalkit.devices import resolve_device; from retrievalkit.cli.common import "
            "resolve_device as r; assert r is resolve_device; resolve_device('cpu'); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "False"
