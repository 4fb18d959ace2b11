"""Time per image of each backbone, side by side: global GeM descriptor and deep locals, as `rkit extract` does.

Each round times every backbone on the same images in turn (interleaved, so a busy machine slows all alike);
the table gives the median over rounds of the time per image and the ratio to the first backbone (the limit
to beat: efficientnet-lite0, the default).

    python benchmarks/backbone_speed.py [--images DIR] [--models efficientnet-lite0,efficientnet-lite1,...]
        [--size 512] [--count 12] [--rounds 3] [--threads 1]

Global: one forward pass at --size (single scale) + GeM. Deep locals: the s16 tap at the default pyramid
(1, 0.707, 0.5, 0.353), 1000 strongest kept (no PCA: it is one matrix product). Image decoding is outside the
timing (the same for every backbone).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
MODELS = "efficientnet-lite0,efficientnet-lite1,efficientnet-lite2"


def main() -> None:
    from retrievalkit.configs.extract import LocalExtractConfig
    from retrievalkit.extract.global_desc import build_network
    from retrievalkit.extract.local_deep import LocalBackbone, deep_locals
    from retrievalkit.images.discover import find_images
    from retrievalkit.images.loader import ImageDataset
    from retrievalkit.models.registry import create_backbone

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=Path, default=ROOT / "examples" / "demo" / "images")
    ap.add_argument("--models", default=MODELS)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--count", type=int, default=12, help="images timed per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models = args.models.split(",")
    names = find_images(args.images)[:: max(1, len(find_images(args.images)) // args.count)][: args.count]
    scales = tuple(LocalExtractConfig().scales)
    nets = {}
    for m in models:
        glob = build_network(m, device="cpu").eval()
        loc = LocalBackbone(create_backbone(m).eval())
        ds = ImageDataset(args.images, names, args.size, glob.mean, glob.std)
        nets[m] = (glob, loc, [ds[i].tensor[None] for i in range(len(ds))])
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for m in models:
            glob, loc, xs = nets[m]
            t0 = time.perf_counter()
            with torch.inference_mode():
                for x in xs:
                    glob.describe(x)
            times.setdefault((m, "global"), []).append((time.perf_counter() - t0) / len(xs))
            t0 = time.perf_counter()
            for x in xs:
                deep_locals(loc, x, scales, 1000)
            times.setdefault((m, "locals"), []).append((time.perf_counter() - t0) / len(xs))
    print(f"{len(names)} images of {args.images.name}, longer side {args.size}, {args.rounds} rounds, "
          f"torch threads {torch.get_num_threads()}; median ms/image, ratio to {models[0]}")
    print(f"{'backbone':<22}{'global ms':>10}{'ratio':>7}{'locals ms':>11}{'ratio':>7}{'params (M)':>12}")
    base = {k: statistics.median(times[(models[0], k)]) for k in ("global", "locals")}
    for m in models:
        g, loc_t = statistics.median(times[(m, "global")]), statistics.median(times[(m, "locals")])
        params = sum(p.numel() for p in nets[m][0].parameters()) / 1e6
        print(f"{m:<22}{1000 * g:>10.0f}{g / base['global']:>7.2f}{1000 * loc_t:>11.0f}"
              f"{loc_t / base['locals']:>7.2f}{params:>12.2f}")


if __name__ == "__main__":
    main()
