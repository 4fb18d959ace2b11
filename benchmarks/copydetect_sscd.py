"""copydetect-dev descriptor track: the ImageNet network vs self-supervised models (rkit train --loss infonce),
side by side in one run.

Run: .venv/bin/python benchmarks/copydetect_sscd.py [MODEL.pt ...] [--train-seeds N] [--data DIR] [--size 320]
     [--cache DIR]
--data: any folder of the copydetect-dev layout (queries/, references/, training/, ground_truth.csv), e.g. a
held-out set; --train-seeds N first trains N models with the defaults of `rkit train --loss infonce` (seeds 0 to
N − 1) on the training and reference images of --data (never the queries), then compares them with the rest.
Each model (and efficientnet-lite0, the ImageNet network, always first) describes the queries, references and
training images at longer side --size, then the same path as `rkit copy-detect --descriptors` + `rkit evaluate`:
PCA-whitening learned on the training images (≤ 256-d), score normalisation (β=1, mean of the top 3 training
similarities) folded into one extra dimension, exact L2 search over the pooled pairs (10 × #queries kept). Also
printed: the same without the normalisation (β=0). Limit compared: the ImageNet row (0.724 in
docs/copy-detect.md). Training time and epochs come from each model file's training log.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np

from retrievalkit.copydetect import CopyDetectConfig, Side, descriptor_track
from retrievalkit.copydetect.crops import describe_views, parse_views
from retrievalkit.copydetect.submission import image_ids
from retrievalkit.evaluate.copydetect import (
    descriptor_track_predictions,
    evaluate_copy_detection,
    read_ground_truth_csv,
)
from retrievalkit.images.discover import find_images

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "copydetect-dev"


def train_defaults(data: Path, seed: int, cache: Path) -> str:
    """A model trained with SelfSupervisedConfig's defaults (the CPU recipe) on data's training + reference
    images; kept in ``cache`` (delete it to retrain)."""
    import shutil

    from retrievalkit.configs.train import SelfSupervisedConfig
    from retrievalkit.train.selfsup import train_selfsupervised

    out = cache / f"{_where(data)}sscd-defaults-seed{seed}.pt"
    if not out.exists():
        images = cache / f"{_where(data)}train-images"
        for folder in ("training", "references"):
            if not (images / folder).is_dir():
                shutil.copytree(data / folder, images / folder)
        t0 = time.time()
        train_selfsupervised(images, out, SelfSupervisedConfig(seed=seed))
        print(f"  trained {out.name} in {(time.time() - t0) / 60:.1f} min", flush=True)
    return str(out)


def _where(data: Path) -> str:
    """A cache-name prefix for data sets other than copydetect-dev."""
    return "" if data.resolve() == DATA.resolve() else hashlib.sha1(str(data.resolve()).encode()).hexdigest()[:8] + "-"


def describe(model: str, size: int, cache: Path, data: Path = DATA) -> dict[str, Side]:
    from retrievalkit.extract.global_desc import build_network

    tag = model if not Path(model).is_file() else \
        f"{Path(model).stem}-{hashlib.sha1(Path(model).read_bytes()).hexdigest()[:10]}"
    net = None
    out = {}
    for folder in ("queries", "references", "training"):
        names = find_images(data / folder)
        key = cache / f"{_where(data)}{tag}-{folder}-{size}.npz"
        if not key.exists():
            net = net or build_network(model, device="cpu")
            t0 = time.time()
            x, owner, failed = describe_views(net, data / folder, names, size, parse_views("full"), (1.0,),
                                              workers=1)
            assert not failed, failed
            np.savez(key, x=x, owner=owner)
            print(f"  {tag}: described {folder} {x.shape} in {time.time() - t0:.0f}s", flush=True)
        z = np.load(key)
        out[folder] = Side(image_ids(names, data / folder), z["x"], z["owner"],
                           [data / folder / n for n in names], str(key))
    return out


def training_info(model: str) -> str:
    if not Path(model).is_file():
        return "ImageNet weights"
    from retrievalkit.models._files import load_torch_file

    obj = load_torch_file(model)
    extra = obj.get("extra", obj) if isinstance(obj, dict) else {}
    log = extra.get("log") or []
    cfg = extra.get("train") or {}
    secs = sum(float(r.get("seconds", 0)) for r in log)
    return (f"{len(log)} epochs, {secs / 60:.1f} min, size {cfg.get('size')}, lr {cfg.get('lr')}, "
            f"seed {cfg.get('seed')}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("models", nargs="*", help="model files (rkit train --loss infonce)")
    ap.add_argument("--data", type=Path, default=DATA, help="a folder of the copydetect-dev layout")
    ap.add_argument("--train-seeds", type=int, default=0,
                    help="first train this many models with the defaults (seeds 0, 1, ...) on --data")
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/rkit-sscd-cache"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)  # shared cores: more threads only spin
    if not (args.data / "queries").is_dir():
        raise SystemExit(f"{args.data} not found or not of the copydetect-dev layout (queries/, references/, "
                         "training/, ground_truth.csv)")
    args.cache.mkdir(parents=True, exist_ok=True)
    gt = read_ground_truth_csv(args.data / "ground_truth.csv")
    trained = [train_defaults(args.data, seed, args.cache) for seed in range(args.train_seeds)]
    rows = []
    for model in ["efficientnet-lite0", *trained, *args.models]:
        s = describe(model, args.size, args.cache, args.data)
        q, r, t = s["queries"], s["references"], s["training"]
        res = {}
        for label, cfg in (("plain", CopyDetectConfig(size=args.size, dim=256, norm_beta=0.0)),
                           ("track", CopyDetectConfig(size=args.size, dim=256, norm_beta=1.0))):
            xq, xr = descriptor_track(q, r, t, cfg)
            m = evaluate_copy_detection(descriptor_track_predictions(q.ids, xq, r.ids, xr), gt)
            res[label] = (m.micro_ap, m.recall_at_p90, xq.shape[1])
        rows.append((Path(model).name, training_info(model), res))
        print(f"{rows[-1][0]}: track µAP {res['track'][0]:.4f} R@P90 {res['track'][1]:.4f}", flush=True)
    base = rows[0][2]["track"][0]
    if len(trained) > 1:
        got = np.array([res["track"][0] for _, _, res in rows[1:1 + len(trained)]])
        print(f"defaults over {len(got)} seeds: µAP {got.mean():.4f} ± {got.std(ddof=1):.4f} "
              f"(min {got.min():.4f}, max {got.max():.4f})")
    print("\n| model | training | µAP without normalisation | descriptor track µAP | R@P90 | dims | vs ImageNet |")
    print("|---|---|---|---|---|---|---|")
    for name, info, res in rows:
        print(f"| {name} | {info} | {res['plain'][0]:.3f} | {res['track'][0]:.3f} | {res['track'][1]:.3f} | "
              f"{res['track'][2]} | ×{res['track'][0] / base:.2f} |")


if __name__ == "__main__":
    main()
