"""``rkit copy-detect``: DISC21 matching-track CSV and descriptor-track HDF5 from query/reference/training images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrievalkit.cli.common import (
    echo_path,
    err_console,
    handle_errors,
    info,
    parse_floats,
    phase_bars,
    progress_bar,
    resolve_device,
)


@handle_errors
def copy_detect_cmd(
    queries: Annotated[Path | None, typer.Option(help="Query images: a folder, or an `rkit extract` features "
                                                    "file.")] = None,
    references: Annotated[Path, typer.Option(help="Reference images: a folder or a features file (e.g. `rkit "
                                             "merge` of --shard outputs).")] = ...,
    training: Annotated[Path | None, typer.Option(help="Training (background) images, folder or features: "
                                                     "they drive score normalisation and PCA-whitening.")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Matching-track CSV to write "
                                                   "(query_id,reference_id,score); with --shard: the features "
                                                   "file of that reference shard.")] = None,
    descriptors: Annotated[Path | None, typer.Option(help="Descriptor-track HDF5 to write (query, reference "
                                                        "≤ 256-d, query_ids, reference_ids).")] = None,
    max_per_query: Annotated[int, typer.Option(help="Matches kept per query.")] = 10,
    max_rows: Annotated[int | None, typer.Option(help="Matches kept over all queries (best scores; default: "
                                                    "no global limit).")] = None,
    norm_beta: Annotated[float, typer.Option(help="Score normalisation s' = s − β·b(q) (0: off). SSCD: 1; DISC21 "
                                             "baseline: 2.")] = 1.0,
    norm_k: Annotated[int, typer.Option(help="Training neighbours for b(q). SSCD: 3; DISC21 baseline: 10.")] = 3,
    norm_stat: Annotated[str, typer.Option(help="b(q) = mean of the top k (mean, SSCD) or the k-th similarity "
                                           "(kth, DISC21 baseline).")] = "mean",
    pca_dim: Annotated[int, typer.Option(help="PCA-whitening dimension learned on the training images (0: off; "
                                         "at most #training − 1).")] = 256,
    pca_shrink: Annotated[float, typer.Option(help="Covariance shrinkage of the PCA-whitening, in [0, 1].")] = 0.0,
    query_views: Annotated[str, typer.Option(help="Query views, comma-separated: full, center (half-area centre "
                                             "crop), grid (2×2 quadrants).")] = "full,center,grid",
    combine: Annotated[str, typer.Option(help="Views combined by max (best view per reference) or mean (one "
                                         "averaged descriptor; always mean for --descriptors).")] = "max",
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Re-score each query's top candidates by "
                                         "SIFT + RANSAC geometric verification (matching track).")] = True,
    verify_top: Annotated[int, typer.Option(help="Candidates verified per query.")] = 10,
    verify_min_inliers: Annotated[int, typer.Option(help="Inliers below this give no bonus.")] = 12,
    model: Annotated[str, typer.Option("--model", "-m", help="Backbone name or model file for folders.")]
    = "efficientnet-lite0",
    weights: Annotated[Path | None, typer.Option(help="Backbone weights file.")] = None,
    size: Annotated[int, typer.Option(help="Longer image side for descriptors (0: original size).")] = 320,
    scales: Annotated[str, typer.Option(help="Comma-separated descriptor scales, e.g. 1,0.7071.")] = "1",
    shard: Annotated[str | None, typer.Option(help="Only describe block I of N of the reference folder (I/N) "
                                                 "into -o; join the shards with rkit merge.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N].")] = "auto",
    workers: Annotated[int, typer.Option(help="Image decoding worker processes.")] = 2,
    block: Annotated[int, typer.Option(help="Queries per search block (bounds memory).")] = 4096,
):
    """Detect edited copies (DISC21): global descriptors, PCA-whitening and score normalisation with the
    training images, multi-view queries, local verification; writes the matching-track CSV and/or the
    descriptor-track HDF5. Ids are file stems. Score with `rkit evaluate matches.csv --gt ground_truth.csv`.

    Example: rkit copy-detect --queries Q/ --references R/ --training T/ -o matches.csv --descriptors desc.h5
    """
    from retrievalkit.copydetect.stage import CopyDetectConfig, copy_detect, extract_reference_shard
    from retrievalkit.copydetect.verify import VerifyConfig
    from retrievalkit.errors import UsageError
    from retrievalkit.images.discover import parse_shard

    sc = tuple(parse_floats(scales, "--scales"))
    cfg = CopyDetectConfig(
        model=model, weights=str(weights) if weights else None, size=size or None, scales=sc,
        query_views=query_views, combine=combine, pca_dim=pca_dim, pca_shrink=pca_shrink, norm_beta=norm_beta,
        norm_k=norm_k, norm_stat=norm_stat, max_per_query=max_per_query, max_rows=max_rows,
        verify=VerifyConfig(top=verify_top, min_inliers=verify_min_inliers) if verify else None,
        device=resolve_device(device), workers=workers, block=block)
    cfg.check()
    if shard is not None:
        sh = parse_shard(shard)
        if output is None or descriptors is not None or queries is not None:
            raise UsageError("--shard describes references only: give --references R/ --shard I/N -o refs.I.h5")
        if not references.is_dir():
            raise UsageError(f"--shard needs a reference folder, got {references}")

        def on_failure(name: str, reason: str) -> None:
            err_console.print(f"[yellow]warning:[/] {references / name}: {reason}; skipped (recorded in the output)",
                          soft_wrap=True)

        with progress_bar("describe references", None) as adv:
            echo_path(extract_reference_shard(references, output, sh, cfg, progress=adv, on_failure=on_failure))
        return
    if queries is None:
        raise UsageError("give --queries (a folder of query images or their features file)")
    if output is not None and output.suffix.lower() in (".h5", ".hdf5"):
        raise UsageError(f"-o {output}: -o is the matching-track CSV (e.g. matches.csv); "
                         f"write descriptors with --descriptors {output}")
    if descriptors is not None and descriptors.suffix.lower() == ".csv":
        raise UsageError(f"--descriptors {descriptors}: that is the descriptor-track HDF5 file (e.g. desc.h5); "
                         f"write matches with -o {descriptors}")
    if training is None and (norm_beta > 0 or pca_dim > 0):
        info("[yellow]note:[/] no --training: score normalisation and PCA-whitening are off")
        cfg.norm_beta, cfg.pca_dim = 0.0, 0

    with phase_bars() as (advance, on_phase):
        csv_path, h5_path = copy_detect(queries, references, training, output, descriptors, cfg, progress=advance,
                                        on_phase=on_phase)
    for p in (csv_path, h5_path):
        if p is not None:
            echo_path(p)


def register(app: typer.Typer) -> None:
    app.command("copy-detect")(copy_detect_cmd)
