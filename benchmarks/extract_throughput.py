"""Throughput of `extract` against the forward pass alone on the same tensors.

The forward pass alone is the limit when decoding overlaps with compute (loader workers): the ratio
extract / forward-only tells how much the pipeline (decode, resize, HDF5 writes) costs on top.

    python benchmarks/extract_throughput.py [--images DIR] [--size 512] [--device auto] [--repeat 2]

Prints a table; re-run to compare. Numbers on a shared machine are noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from retrievalkit.extract.global_desc import build_network, extract_global
from retrievalkit.images.discover import find_images
from retrievalkit.images.loader import ImageDataset

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=Path, default=ROOT / "examples" / "demo" / "images")
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    names = find_images(args.images)
    net = build_network(args.model, device=device)
    ds = ImageDataset(args.images, names, args.size, net.mean, net.std)
    tensors = [ds[i].tensor for i in range(len(ds))]
    print(f"{len(names)} images from {args.images}, longer side {args.size}, {args.model}, device {device}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'mode':<34}{'batch':>6}{'images/s':>11}{'ratio':>8}")
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        best_fwd = best_ext = float("inf")
        for _ in range(args.repeat):
            # forward only: same tensors, same same-shape batching as extract, already in memory
            t0 = time.perf_counter()
            with torch.inference_mode():
                from retrievalkit.images.loader import LoadedImage, group_same_shape

                items = [LoadedImage(i, n, t) for i, (n, t) in enumerate(zip(names, tensors))]
                for group in group_same_shape(items, bs):
                    net.describe(torch.stack([g.tensor for g in group]).to(device))
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
            best_fwd = min(best_fwd, time.perf_counter() - t0)
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                extract_global(args.images, Path(tmp) / "f.h5", model=args.model, size=args.size, device=device,
                               batch_size=bs, workers=args.workers)
                best_ext = min(best_ext, time.perf_counter() - t0)
        n = len(names)
        print(f"{'forward pass only (limit)':<34}{bs:>6}{n / best_fwd:>11.1f}{1.0:>8.2f}")
        print(f"{'extract (decode+resize+write)':<34}{bs:>6}{n / best_ext:>11.1f}{best_fwd / best_ext:>8.2f}")


if __name__ == "__main__":
    main()
