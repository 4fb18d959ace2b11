"""``rkit sfm-mine``: training tuples from Structure-from-Motion models (pycolmap)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrievalkit.cli import options as opt
from retrievalkit.cli.common import echo_path, err_console, handle_errors, info, progress_bar, resolve_device, state
from retrievalkit.cli.options import command, config_from_options, default_of, refuse_inapplicable
from retrievalkit.configs.mining import SfmMineConfig


def _summary(reports) -> None:
    if state.quiet or not reports:
        return
    from rich.table import Table

    table = Table(title="sfm-mine", title_justify="left")
    for col, just in (("scene", "left"), ("images", "right"), ("registered", "right"), ("models", "right"),
                      ("tuples", "right"), ("seconds", "right"), ("status", "left")):
        table.add_column(col, justify=just)
    for r in reports:
        status = "reused" if r.reused and r.state == "done" else r.state
        if r.reused and r.state == "failed":
            status = "failed (kept)"
        table.add_row(r.scene, str(r.images), str(r.registered), str(r.models), str(r.tuples),
                      "" if r.reused else f"{r.seconds:.1f}", status)
    tot = [sum(getattr(r, a) for r in reports) for a in ("images", "registered", "models", "tuples")]
    table.add_row("[bold]total", *[f"[bold]{v}" for v in tot], "", "")
    err_console.print(table)
    for r in reports:
        if r.reason:
            err_console.print(f"  {r.scene}: {r.reason}", markup=False, soft_wrap=True)


_S = SfmMineConfig


def _d(field: str) -> str:
    return default_of(_S, field)


@handle_errors
def sfm_mine_cmd(
    images: Annotated[Path, typer.Argument(exists=True, file_okay=False,
                                           help="Folder of scene sub-folders, or a flat folder of photos "
                                                "(split into clusters by global descriptors).")],
    output: opt.output("Tuples file to write (tuples.h5)."),
    models_dir: Annotated[Path | None, typer.Option(
        help="Where the SfM models are kept; a rerun reuses finished scenes. "
             "Default: <output stem>-models next to the output.")] = None,
    positive: Annotated[str | None, typer.Option(
        help="Positive choice among images sharing enough 3D points: random (hard, varied), "
             f"most-shared (easy) or closest (most similar global descriptor) {_d('positive')}.")] = None,
    per_query: Annotated[int | None, typer.Option(help=f"Positives per query image {_d('per_query')}.")] = None,
    min_overlap: Annotated[float | None, typer.Option(
        help=f"A positive sees at least this fraction of the query's 3D points {_d('min_overlap')}.")] = None,
    max_scale: Annotated[float | None, typer.Option(
        help=f"Largest scale change between query and positive (either way) {_d('max_scale')}.")] = None,
    min_shared: Annotated[int | None, typer.Option(
        help=f"A positive shares at least this many 3D points {_d('min_shared')}.")] = None,
    negatives: Annotated[int | None, typer.Option(
        help="Fixed random negatives per tuple from other scenes (0: none; training mines its own "
             f"hard negatives from the cluster ids) {_d('negatives')}.")] = None,
    val_fraction: Annotated[float | None, typer.Option(
        help=f"Fraction of queries held out as validation pairs (val_qidx/val_pidx) {_d('val_fraction')}.")] = None,
    sift_size: Annotated[int | None, typer.Option(help=f"Longer side (pixels) of the images for SIFT "
                                                  f"{_d('sift_size')}.")] = None,
    max_features: Annotated[int | None, typer.Option(help=f"SIFT features per image {_d('max_features')}.")] = None,
    matcher: Annotated[str | None, typer.Option(help="exhaustive (all pairs) or sequential (videos) "
                                                f"{_d('matcher')}.")] = None,
    overlap: Annotated[int | None, typer.Option(help=f"Sequential matcher: neighbours per image {_d('overlap')}.")]
    = None,
    min_model_size: Annotated[int | None, typer.Option(help=f"Smallest model (images) kept {_d('min_model_size')}.")]
    = None,
    relaxed_init: Annotated[bool | None, typer.Option(
        "--relaxed-init/--strict-init",
        help="Accept initial pairs with forward motion and a 4° triangulation angle (COLMAP's strict "
             f"default: 16°); street walks need it {_d('relaxed_init')}.")] = None,
    mapper_trials: Annotated[int | None, typer.Option(
        help="Mapping runs (next seed each) while fewer than half of a scene's images register "
             f"{_d('mapper_trials')}.")] = None,
    timeout: Annotated[float | None, typer.Option(
        help="Seconds one scene may take (0: no limit); a scene over the limit is skipped "
             f"{_d('timeout')}.")] = None,
    retry_failed: Annotated[bool | None, typer.Option(
        "--retry-failed", help="Reconstruct again the scenes that failed in an earlier run.")] = None,
    features: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False,
        help="Global descriptors of the images (flat-folder clustering and --positive closest); "
             "extracted with --model when absent.")] = None,
    model: opt.model(f"Model for descriptors when --features is absent {_d('model')}.") = None,
    size: opt.size(f"Image size for those descriptors {_d('size')}.") = None,
    graph_k: opt.graph_k(f"Flat folder: neighbours in the mutual kNN graph that clusters it {_d('graph_k')}.")
    = None,
    cluster_threshold: Annotated[float | None, typer.Option(
        help=f"Flat folder: smallest descriptor similarity of a kept (mutual) kNN edge {_d('cluster_threshold')}.")]
    = None,
    seed: opt.seed(f"Random seed (positives, negatives, mapper) {_d('seed')}.") = None,
    device: opt.Device = None,
):
    """Reconstruct each photo collection with pycolmap and mine query/positive pairs from the 3D models.

    Every sub-folder of IMAGES is a scene; photos directly in IMAGES are first clustered by global
    descriptors. Positives share 3D points with the query (Radenović et al. ECCV 2016); each model is a
    cluster, so training takes its hard negatives from other models. Scenes that do not reconstruct are
    reported and skipped. The pairs are also the training set of `rkit whiten --method learned`.
    COLMAP uses the threads of `rkit --threads N` (default 2).

    Example: rkit sfm-mine photos/ -o tuples.h5 --models-dir sfm-models/
    """
    from retrievalkit.mining.sfm import sfm_mine

    cfg = config_from_options(
        SfmMineConfig, positive=positive, per_query=per_query, min_overlap=min_overlap, max_scale=max_scale,
        min_shared=min_shared, negatives=negatives, val_fraction=val_fraction, sift_size=sift_size,
        max_features=max_features, matcher=matcher, overlap=overlap, min_model_size=min_model_size,
        relaxed_init=relaxed_init, mapper_trials=mapper_trials, timeout=timeout, model=model, size=size,
        graph_k=graph_k, cluster_threshold=cluster_threshold, retry_failed=retry_failed, seed=seed)
    if cfg.matcher != "sequential":
        refuse_inapplicable(f"--matcher {cfg.matcher} (it is an option of --matcher sequential)",
                            {"--overlap": overlap})
    if features is not None:
        refuse_inapplicable("sfm-mine --features (the descriptors are given, not extracted)",
                            {"--model": model, "--size": size})
    dev = resolve_device(device)
    reports = []
    with progress_bar("sfm-mine scenes", None) as advance:
        def on_scene(r):
            reports.append(r)
            advance(1)
            if r.state == "failed" and not r.reused:
                info(f"[yellow]skipped[/] {r.scene} ({r.images} images): {r.reason}")

        out = sfm_mine(images, output, cfg, features=features, models_dir=models_dir, threads=state.threads,
                       device=dev, on_scene=on_scene)
    _summary(reports)
    echo_path(out)


def register(app: typer.Typer) -> None:
    command(app, "sfm-mine", sfm_mine_cmd, renamed={
        "--max-image-size": "--sift-size", "--cluster-k": "--graph-k",
        "--threads": "COLMAP's threads are rkit's: give rkit --threads N before the command"})
