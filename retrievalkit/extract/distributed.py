"""Extraction under ``torchrun``: one process per GPU (or CPU worker), each a shard, merged by rank 0.

    torchrun --nproc_per_node 4 -m retrievalkit extract photos/ -o feats.h5 --device cuda

Each rank extracts the contiguous block ``rank+1 / world`` of the sorted names into a hidden part file next to
the output, ranks meet at a barrier, and rank 0 merges the parts (``rkit merge``'s checks) into the output.
"""

from __future__ import annotations

import os
from pathlib import Path


def world() -> tuple[int, int, int]:
    """(rank, local rank, world size) from torchrun's environment; (0, 0, 1) outside it."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)),
            int(os.environ.get("WORLD_SIZE", 1)))


def part_path(output: str | os.PathLike, rank: int, size: int) -> Path:
    output = Path(output)
    return output.with_name(f".{output.name}.rank{rank + 1}of{size}.h5")


def rank_device(device: str, local_rank: int) -> str:
    """One GPU per process: a bare ``cuda`` becomes ``cuda:LOCAL_RANK``."""
    return f"cuda:{local_rank}" if device == "cuda" else device


def run_distributed(extract_one, output: str | os.PathLike, device: str) -> Path | None:
    """Run ``extract_one(shard, part_output, device)`` on this rank; rank 0 merges and returns the output path.

    Other ranks return None. The process group uses NCCL on CUDA and gloo on CPU.
    """
    import torch.distributed as dist

    from retrievalkit.extract.merge import merge_features

    rank, local_rank, size = world()
    dev = rank_device(device, local_rank)
    backend = "nccl" if dev.startswith("cuda") else "gloo"
    own_group = not dist.is_initialized()
    if own_group:
        dist.init_process_group(backend)
    try:
        part = part_path(output, rank, size)
        extract_one((rank + 1, size), part, dev)
        dist.barrier()
        if rank != 0:
            return None
        parts = [part_path(output, r, size) for r in range(size)]
        out = merge_features(parts, output)
        for p in parts:
            p.unlink(missing_ok=True)
        return out
    finally:
        if own_group:
            dist.destroy_process_group()


def launched_by_torchrun() -> bool:
    """True in a process started by ``torchrun`` with more than one process."""
    return world()[2] > 1


def extract_global_distributed(images: str | os.PathLike, output: str | os.PathLike, config=None, *,
                               device: str = "cpu", shard: tuple[int, int] | None = None, **options) -> Path | None:
    """:func:`~retrievalkit.extract.global_desc.extract_global` of this rank's shard under torchrun; rank 0
    merges the parts and returns the output path, the other ranks return None.

    ``config``: its :class:`~retrievalkit.configs.extract.GlobalExtractConfig`; ``options``: the other keyword
    arguments of ``extract_global`` (no ``progress``: ranks draw no bars).
    """
    from retrievalkit.errors import UsageError
    from retrievalkit.extract.global_desc import extract_global

    if shard is not None:
        raise UsageError("--shard and torchrun both split the work; use one of them")
    options.pop("progress", None)
    return run_distributed(lambda shard_, part, dev: extract_global(images, part, config, shard=shard_,
                                                                    device=dev, **options), output, device)
