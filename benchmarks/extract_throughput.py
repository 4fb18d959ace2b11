"""Throughput of `extract` against the forward pass alone on the same tensors.

The forward pass alone is the limit when decoding overlaps with compute (loader workers): the ratio
extract / forward-only tells how much the pipeline (decode, resize, HDF5 writes) costs on top. Both run with
the allocator setting rkit applies during extraction (retrievalkit/extract/allocator.py) and in channels-last
memory format, as rkit extract runs on CPU, so the limit is the best forward pass this process can do.

    python benchmarks/extract_throughput.py                       # batch 1, 8, 32 on the demo photos
    python benchmarks/extract_throughput.py --allocator           # + the allocator options, fresh processes
    python benchmarks/extract_throughput.py --configs             # + workers x torch threads, channels-last

Tables:
- extract vs forward-only at each batch size (best of ``--repeat``; forward and extract alternate, so a load
  change hits both), the ratio (aim >= 0.90); and the two fixed costs every extract run carries on top of its
  forward passes, not overlapped with anything: loading the network, and giving the retained heap back when
  extraction ends (``malloc_trim``; at batch 32 the heap holds the peak activations, ~3 GB at 512 px). The
  second line adds them to the forward passes; extract's ratio to that line is what the pipeline itself
  (decode, resize, batching, writes) costs. The last line is the limit when no core is free for the decode
  workers (a machine busy with other jobs): the forward pass's share of the CPU seconds of forward + decode;
  and the CPU seconds of the forward passes over those of extract (main process + decode workers), the ratio
  that holds when every core is busy, and one that the load of other jobs barely moves;
- ``--allocator``: forward-only img/s and minor page faults per image at each batch size, each option in
  a fresh process (glibc settings are per process): glibc defaults, the mmap threshold raised to its 32 MiB
  maximum with trimming off, and rkit's setting (mmap off, trimming off);
- ``--configs``: extract img/s at batch 8 for decode workers 0/1/2 x torch threads 1/all, and the forward
  pass with channels-last memory format against the default (contiguous).

Numbers on a shared machine are noisy: read the ratios, and run it twice.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_tensors(images, size, model):
    import torch  # noqa: F401

    from retrievalkit.extract.global_desc import build_network
    from retrievalkit.images.discover import find_images
    from retrievalkit.images.loader import ImageDataset

    names = find_images(images)
    net = build_network(model, device="cpu")
    ds = ImageDataset(images, names, size, net.mean, net.std)
    c0 = time.process_time()
    tensors = [ds[i].tensor for i in range(len(ds))]
    load_tensors.decode_cpu = time.process_time() - c0  # CPU seconds to decode + resize + normalise them all
    return names, net, tensors


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished children (the decode workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def forward_only(net, names, tensors, bs, channels_last=False):
    """Describe the in-memory tensors in the same same-shape batches as extract: seconds."""
    import torch

    from retrievalkit.images.loader import LoadedImage, group_same_shape

    items = [LoadedImage(i, n, t) for i, (n, t) in enumerate(zip(names, tensors))]
    t0 = time.perf_counter()
    with torch.inference_mode():
        for group in group_same_shape(items, bs):
            x = torch.stack([g.tensor for g in group])
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            net.describe(x)
    return time.perf_counter() - t0


def probe(args):
    """One allocator option in this (fresh) process: forward-only img/s and minor faults per image."""
    import ctypes

    import torch

    torch.set_num_threads(args.threads)
    libc = ctypes.CDLL("libc.so.6")
    if args.probe == "threshold":
        libc.mallopt(-3, 32 * 2**20)  # M_MMAP_THRESHOLD: its maximum on 64-bit glibc
        libc.mallopt(-1, 2**31 - 1)  # M_TRIM_THRESHOLD
    elif args.probe == "rkit":
        from retrievalkit.extract.allocator import keep_freed_memory

        keep_freed_memory()
    names, net, tensors = load_tensors(args.images, args.size, args.model)
    names, tensors = names[:args.probe_images], tensors[:args.probe_images]
    out = []
    for bs in args.batch_sizes:
        forward_only(net, names, tensors, bs)  # warm-up
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t = min(forward_only(net, names, tensors, bs) for _ in range(args.repeat))
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        faults = (r1.ru_minflt - r0.ru_minflt) / (args.repeat * len(names))
        out.append(f"{bs}:{len(names) / t:.3f}:{faults:.0f}")
    print("PROBE " + " ".join(out))


def allocator_table(args):
    print(f"\nallocator options (forward pass only on the first {args.probe_images} images, a fresh process each, "
          f"{args.rounds} rounds alternating, best shown):")
    modes = [("glibc defaults", "none"), ("mmap threshold 32 MiB, no trim", "threshold"),
             ("rkit: mmap off, no trim", "rkit")]
    res = {m: [] for _, m in modes}
    for _ in range(args.rounds):
        for _, m in modes:
            cmd = [sys.executable, __file__, "--probe", m, "--images", str(args.images), "--size", str(args.size),
                   "--model", args.model, "--threads", str(args.threads), "--repeat", str(args.repeat),
                   "--probe-images", str(args.probe_images),
                   "--batch-sizes", ",".join(map(str, args.batch_sizes))]
            out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ, check=True).stdout
            line = next(li for li in out.splitlines() if li.startswith("PROBE "))
            res[m].append({int(b): (float(r), float(f)) for b, r, f in (x.split(":") for x in line.split()[1:])})
    print(f"{'option':<34}" + "".join(f"{'b' + str(b) + ' img/s':>11}{'faults/img':>11}" for b in args.batch_sizes))
    for label, m in modes:
        cells = ""
        for b in args.batch_sizes:
            best = max(r[b][0] for r in res[m])
            faults = min(r[b][1] for r in res[m])
            cells += f"{best:>11.2f}{faults:>11.0f}"
        print(f"{label:<34}{cells}")


def channels_last_copy(net):
    import copy

    import torch

    return copy.deepcopy(net).to(memory_format=torch.channels_last)


def main_table(args, names, net, tensors):
    from retrievalkit.configs.extract import GlobalExtractConfig
    from retrievalkit.extract.allocator import retained_heap
    from retrievalkit.extract.global_desc import build_network, extract_global

    net = channels_last_copy(net)
    n = len(names)
    build = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        build_network(args.model, device="cpu")
        build = min(build, time.perf_counter() - t0)
    print(f"loading the network (build_network, part of every extract run): {build:.2f} s")
    print(f"{'mode':<38}{'batch':>6}{'images/s':>11}{'ratio':>8}")
    for bs in args.batch_sizes:
        best_fwd = best_rel = best_ext = fwd_cpu = ext_cpu = float("inf")
        for _ in range(args.repeat):
            with retained_heap():
                c0 = time.process_time()
                best_fwd = min(best_fwd, forward_only(net, names, tensors, bs, channels_last=True))
                fwd_cpu = min(fwd_cpu, time.process_time() - c0)
                t1 = time.perf_counter()
            best_rel = min(best_rel, time.perf_counter() - t1)  # leaving the block gives the heap back
            with tempfile.TemporaryDirectory() as tmp:
                c0 = _cpu_seconds()
                t0 = time.perf_counter()
                extract_global(args.images, Path(tmp) / "f.h5", GlobalExtractConfig(
                    model=args.model, size=args.size, batch_size=bs, workers=args.workers), device="cpu")
                best_ext = min(best_ext, time.perf_counter() - t0)
                ext_cpu = min(ext_cpu, _cpu_seconds() - c0)
        fixed = best_fwd + best_rel + build
        print(f"{'forward pass only (limit)':<38}{bs:>6}{n / best_fwd:>11.2f}{1.0:>8.2f}")
        print(f"{'  + heap release + network load':<38}{bs:>6}{n / fixed:>11.2f}{best_fwd / fixed:>8.2f}"
              f"   (release {best_rel:.2f} s, load {build:.2f} s)")
        print(f"{'extract (decode+resize+write)':<38}{bs:>6}{n / best_ext:>11.2f}{best_fwd / best_ext:>8.2f}"
              f"   ({fixed / best_ext:.2f} of the line above)")
        dec = load_tensors.decode_cpu
        print(f"{'  no spare core: forward CPU share':<38}{bs:>6}{'':>11}{fwd_cpu / (fwd_cpu + dec):>8.2f}"
              f"   (forward {fwd_cpu:.2f} CPU s, decode {dec:.2f} CPU s)")
        print(f"{'  CPU seconds: forward / extract':<38}{bs:>6}{'':>11}{fwd_cpu / ext_cpu:>8.2f}"
              f"   (extract {ext_cpu:.2f} CPU s, its decode workers included)", flush=True)


def configs_table(args, names, net, tensors):
    import torch

    from retrievalkit.configs.extract import GlobalExtractConfig
    from retrievalkit.extract.allocator import retained_heap
    from retrievalkit.extract.global_desc import extract_global

    bs = 8
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    print(f"\nbatch {bs}: decode workers x torch threads ({cores} cores available), extract img/s, best of "
          f"{args.repeat}")
    threads = sorted({1, cores})
    print(f"{'workers':>8}" + "".join(f"{'threads ' + str(t):>12}" for t in threads))
    for w in (0, 1, 2):
        row = f"{w:>8}"
        for t in threads:
            if t > 1 and w != args.workers:  # threads > 1 only with the default workers (slow when oversubscribed)
                row += f"{'':>12}"
                continue
            torch.set_num_threads(t)
            best = float("inf")
            for _ in range(args.repeat):
                with tempfile.TemporaryDirectory() as tmp:
                    t0 = time.perf_counter()
                    extract_global(args.images, Path(tmp) / "f.h5", GlobalExtractConfig(
                        model=args.model, size=args.size, batch_size=bs, workers=w), device="cpu")
                    best = min(best, time.perf_counter() - t0)
            row += f"{len(names) / best:>12.2f}"
        print(row, flush=True)
    torch.set_num_threads(args.threads)
    cl = channels_last_copy(net)
    best = {False: float("inf"), True: float("inf")}
    for _ in range(args.repeat):  # alternate
        with retained_heap():
            for flag in (False, True):
                best[flag] = min(best[flag], forward_only(cl if flag else net, names, tensors, bs, flag))
    n = len(names)
    print(f"forward only, batch {bs}: contiguous {n / best[False]:.2f} img/s, channels-last "
          f"{n / best[True]:.2f} img/s, ratio {best[False] / best[True]:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=Path, default=ROOT / "examples" / "demo" / "images")
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: a shared machine)")
    ap.add_argument("--batch-sizes", default="1,8,32")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="--allocator: fresh processes per option")
    ap.add_argument("--allocator", action="store_true")
    ap.add_argument("--probe-images", type=int, default=24, help="--allocator: images per forward pass timing")
    ap.add_argument("--configs", action="store_true")
    ap.add_argument("--probe", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    if args.probe:
        probe(args)
        return
    import torch

    torch.set_num_threads(args.threads)
    names, net, tensors = load_tensors(args.images, args.size, args.model)
    print(f"{len(names)} images from {args.images.name}/, longer side {args.size}, {args.model}, CPU, torch threads "
          f"{torch.get_num_threads()}, {args.workers} decode workers; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs")
    main_table(args, names, net, tensors)
    if args.allocator:
        allocator_table(args)
    if args.configs:
        configs_table(args, names, net, tensors)


if __name__ == "__main__":
    main()
