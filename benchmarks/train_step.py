"""Time and peak memory of one training step, per loss and batch size, one-pass vs two-pass.

Each configuration runs in a fresh process: it builds the network and the batch's images, records the peak
resident memory (ru_maxrss) so far, runs one step (forward, loss, backward, Adam step) and reports the growth
of the peak, i.e. the memory the step itself needed (activations kept for the backward pass). The two-pass
mode (--chunk) keeps only one chunk's activations, so its memory should stay flat as the batch grows while the
one-pass memory grows linearly; the time of two-pass is about 1.3-1.5x (an extra forward without a graph).

Usage:
    OMP_NUM_THREADS=1 python benchmarks/train_step.py                      # tiny-cnn, 128 px, batches 4,16,64
    python benchmarks/train_step.py --backbone efficientnet-lite0 --size 160 --tuples 2,8,32
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def one_step(args) -> dict:
    import numpy as np
    import torch

    from retrievalkit.models import RetrievalNet, create_backbone
    from retrievalkit.train.batch import batch_backward, build_batch, make_loss, pair_keys

    torch.manual_seed(0)
    net = RetrievalNet(create_backbone(args.backbone, weights="random"), pooling="gem").eval()
    t = args.tuples
    n_img = t * (2 + args.num_neg)
    cluster = np.arange(n_img) // 2  # image 2i and 2i+1 match
    qidx, pidx = np.arange(0, 2 * t, 2), np.arange(1, 2 * t, 2)
    keys = pair_keys(qidx, pidx, n_img)
    negs = np.arange(2 * t, n_img).reshape(t, args.num_neg)
    batch = build_batch([(int(q), int(p), list(map(int, n))) for q, p, n in zip(qidx, pidx, negs)], cluster,
                        keys, n_img)
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(3, args.size, args.size, generator=g) for _ in range(len(batch))]
    fn = make_loss(args.loss)
    opt = torch.optim.Adam(net.parameters(), lr=1e-6)
    # warm-up on two images so that allocator and Adam state exist before the baseline is taken
    batch_backward(net, xs[:2], lambda e: e.sum())
    opt.step()
    opt.zero_grad()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    batch_backward(net, xs, lambda e: fn(e, batch), chunk=args.chunk or None)
    opt.step()
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"images": len(batch), "seconds": dt, "peak_mb": (peak - base) / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="tiny-cnn")
    ap.add_argument("--size", type=int, default=128, help="square image side")
    ap.add_argument("--losses", default="contrastive,triplet,recall-k")
    ap.add_argument("--tuples", default="4,16,64", help="tuples per batch (images = tuples * (2 + num_neg))")
    ap.add_argument("--num-neg", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=8, help="two-pass chunk (images with a graph at once)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--loss", default="contrastive", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.tuples = int(args.tuples)
        print(json.dumps(one_step(args)))
        return
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    print(f"backbone {args.backbone}, {args.size}x{args.size} images, {args.num_neg} negatives per tuple, "
          f"two-pass chunk {args.chunk}, OMP_NUM_THREADS={env['OMP_NUM_THREADS']}")
    print(f"{'loss':<12}{'tuples':>7}{'images':>7} | {'1-pass s':>9}{'MB':>8} | {'2-pass s':>9}{'MB':>8} | "
          f"{'time x':>7}{'mem x':>7}")
    for loss in args.losses.split(","):
        for t in args.tuples.split(","):
            res = {}
            for mode, chunk in (("one", 0), ("two", args.chunk)):
                cmd = [sys.executable, __file__, "--child", "--backbone", args.backbone, "--size", str(args.size),
                       "--tuples", t, "--num-neg", str(args.num_neg), "--chunk", str(chunk), "--loss", loss]
                out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
                res[mode] = json.loads(out.strip().splitlines()[-1])
            o, w = res["one"], res["two"]
            print(f"{loss:<12}{t:>7}{o['images']:>7} | {o['seconds']:>9.3f}{o['peak_mb']:>8.1f} | "
                  f"{w['seconds']:>9.3f}{w['peak_mb']:>8.1f} | {w['seconds'] / o['seconds']:>7.2f}"
                  f"{w['peak_mb'] / max(o['peak_mb'], 0.1):>7.2f}")
    print("time x, mem x: two-pass / one-pass. Peak MB: growth of the process's peak RSS during the step.")


if __name__ == "__main__":
    main()
