"""``rkit sfm-mine``: training tuples from Structure-from-Motion models (pycolmap)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrievalkit.cli.common import echo_path, err_console, handle_errors, info, progress_bar, resolve_device, state


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


def register(app: typer.Typer) -> None:
    @app.command("sfm-mine")
    @handle_errors
    def sfm_mine_cmd(
        images: Annotated[Path, typer.Argument(exists=True, file_okay=False,
                                               help="Folder of scene sub-folders, or a flat folder of photos "
                                                    "(split into clusters by global descriptors).")],
        output: Annotated[Path, typer.Option("-o", "--output", help="Tuples file to write (tuples.h5).")],
        models_dir: Annotated[Path | None, typer.Option(
            help="Where the SfM models are kept; a rerun reuses finished scenes. "
                 "Default: <output stem>-models next to the output.")] = None,
        positive: Annotated[str, typer.Option(
            help="Positive choice among images sharing enough 3D points: random (hard, varied), "
                 "most-shared (easy) or closest (most similar global descriptor).")] = "random",
        per_query: Annotated[int, typer.Option(help="Positives per query image.")] = 1,
        min_overlap: Annotated[float, typer.Option(
            help="A positive sees at least this fraction of the query's 3D points.")] = 0.2,
        max_scale: Annotated[float, typer.Option(
            help="Largest scale change between query and positive (either way).")] = 1.5,
        min_shared: Annotated[int, typer.Option(help="A positive shares at least this many 3D points.")] = 10,
        negatives: Annotated[int, typer.Option(
            help="Fixed random negatives per tuple from other scenes (0: none; training mines its own "
                 "hard negatives from the cluster ids).")] = 5,
        val_fraction: Annotated[float, typer.Option(
            help="Fraction of queries held out as validation pairs (val_qidx/val_pidx).")] = 0.0,
        max_image_size: Annotated[int, typer.Option(help="Longer side (pixels) for SIFT.")] = 1024,
        max_features: Annotated[int, typer.Option(help="SIFT features per image.")] = 4096,
        matcher: Annotated[str, typer.Option(help="exhaustive (all pairs) or sequential (videos).")] = "exhaustive",
        overlap: Annotated[int, typer.Option(help="Sequential matcher: neighbours per image.")] = 10,
        min_model_size: Annotated[int, typer.Option(help="Smallest model (images) kept.")] = 3,
        relaxed_init: Annotated[bool, typer.Option(
            "--relaxed-init/--strict-init",
            help="Accept initial pairs with forward motion and a 4° triangulation angle (COLMAP's strict "
                 "default: 16°); street walks need it.")] = True,
        mapper_trials: Annotated[int, typer.Option(
            help="Mapping runs (next seed each) while fewer than half of a scene's images register.")] = 3,
        threads: Annotated[int, typer.Option(help="CPU threads for COLMAP.")] = 2,
        timeout: Annotated[float, typer.Option(
            help="Seconds one scene may take (0: no limit); a scene over the limit is skipped.")] = 0.0,
        retry_failed: Annotated[bool, typer.Option(
            help="Reconstruct again the scenes that failed in an earlier run.")] = False,
        features: Annotated[Path | None, typer.Option(
            exists=True, dir_okay=False,
            help="Global descriptors of the images (flat-folder clustering and --positive closest); "
                 "extracted with --model when absent.")] = None,
        model: Annotated[str, typer.Option(help="Model for descriptors when --features is absent.")]
        = "efficientnet-lite0",
        size: Annotated[int, typer.Option(help="Image size for those descriptors.")] = 512,
        cluster_k: Annotated[int, typer.Option(help="Flat folder: neighbours in the kNN graph.")] = 5,
        cluster_threshold: Annotated[float, typer.Option(
            help="Flat folder: smallest descriptor similarity of a kept (mutual) kNN edge.")] = 0.65,
        seed: Annotated[int, typer.Option(help="Random seed (positives, negatives, mapper).")] = 0,
        device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N] (descriptor extraction).")] = "auto",
    ):
        """Reconstruct each photo collection with pycolmap and mine query/positive pairs from the 3D models.

        Every sub-folder of IMAGES is a scene; photos directly in IMAGES are first clustered by global
        descriptors. Positives share 3D points with the query (Radenović et al. ECCV 2016); each model is a
        cluster, so training takes its hard negatives from other models. Scenes that do not reconstruct are
        reported and skipped. The pairs are also the training set of `rkit whiten --method learned`.

        Example: rkit sfm-mine photos/ -o tuples.h5 --models-dir sfm-models/
        """
        from retrievalkit.mining.colmap import SfmOptions
        from retrievalkit.mining.sfm import sfm_mine

        opts = SfmOptions(max_image_size=max_image_size, max_features=max_features, matcher=matcher,
                          overlap=overlap, min_model_size=min_model_size, relaxed_init=relaxed_init,
                          mapper_trials=mapper_trials,
                          threads=threads, seed=seed,
                          timeout=timeout).check()
        dev = resolve_device(device)
        reports = []
        with progress_bar("sfm-mine scenes", None) as advance:
            def on_scene(r):
                reports.append(r)
                if r.state == "failed" and not r.reused:
                    info(f"[yellow]skipped[/] {r.scene} ({r.images} images): {r.reason}")

            out = sfm_mine(images, output, models_dir=models_dir, options=opts, positive=positive,
                           per_query=per_query, min_overlap=min_overlap, max_scale=max_scale,
                           min_shared=min_shared, negatives=negatives, val_fraction=val_fraction, seed=seed,
                           features=features, model=model, size=size, cluster_k=cluster_k,
                           cluster_threshold=cluster_threshold, retry_failed=retry_failed, device=dev,
                           progress=advance, on_scene=on_scene)
        _summary(reports)
        echo_path(out)
