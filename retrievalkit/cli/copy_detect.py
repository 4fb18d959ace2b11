"""``rkit copy-detect``: DISC21 matching-track CSV and descriptor-track HDF5 from query/reference/training images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrievalkit.cli import options as opt
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
from retrievalkit.cli.options import command, config_from_options, default_of, refuse_inapplicable
from retrievalkit.configs.copydetect import CopyDetectConfig, VerifyConfig
from retrievalkit.errors import UsageError

_C = CopyDetectConfig


def _d(field: str) -> str:
    return default_of(_C, field)


@handle_errors
def copy_detect_cmd(
    queries: opt.queries("Query images: a folder, or an `rkit extract` features file.", dir_okay=True,
                         required=False) = None,
    database: opt.database("Database (DISC21 'references') images: a folder or a features file (e.g. `rkit merge` "
                           "of --shard outputs).", dir_okay=True, required=False) = None,
    training: Annotated[Path | None, typer.Option(exists=True, help="Training (background) images, folder or "
                                                  "features: they drive score normalisation and PCA-whitening.")]
    = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Matching-track CSV to write "
                                                "(query_id,reference_id,score).")] = None,
    descriptors: Annotated[Path | None, typer.Option(help="Descriptor-track HDF5 to write (query, reference "
                                                     "≤ 256-d, query_ids, reference_ids).")] = None,
    index: Annotated[list[Path] | None, typer.Option("--index", exists=True, dir_okay=False, help="A built faiss "
                                                     "index of the --database features file (rkit index build; "
                                                     "repeat for parts), searched instead of the vectors; needs "
                                                     "--dim 0 (no PCA-whitening).")] = None,
    database_features: Annotated[Path | None, typer.Option(help="With --shard: the features file of that block of "
                                                           "the database folder (join the blocks with rkit merge)."
                                                           )] = None,
    top_k: opt.top_k(f"Matches kept per query {_d('top_k')}.") = None,
    max_rows: Annotated[int | None, typer.Option(help="Matches kept over all queries (best scores; default: "
                                                 "no global limit).")] = None,
    norm_beta: Annotated[float | None, typer.Option(help="Score normalisation s' = s − β·b(q) (0: off). Default: 1 "
                                                    "(SSCD) with --training, off without; DISC21 baseline: 2.")]
    = None,
    norm_k: Annotated[int | None, typer.Option(help="Training neighbours for b(q) "
                                               f"{_d('norm_k')}; DISC21 baseline: 10.")] = None,
    norm_stat: Annotated[str | None, typer.Option(help="b(q) = mean of the top k (mean, SSCD) or the k-th "
                                                  f"similarity (kth, DISC21 baseline) {_d('norm_stat')}.")] = None,
    dim: opt.dim("PCA-whitening dimension learned on the training images (0: off; at most #training − 1). "
                 "Default: 256 with --training, off without.") = None,
    shrinkage: opt.shrinkage(f"Covariance shrinkage of the PCA-whitening, in [0, 1] {_d('shrinkage')}.") = None,
    query_views: Annotated[str | None, typer.Option(help="Query views, comma-separated: full, center (half-area "
                                                    "centre crop), grid (2×2 quadrants) "
                                                    f"{_d('query_views')}.")] = None,
    combine: Annotated[str | None, typer.Option(help="Views combined by max (best view per reference) or mean (one "
                                                "averaged descriptor; always mean for --descriptors) "
                                                f"{_d('combine')}.")] = None,
    verify: Annotated[bool | None, typer.Option("--verify/--no-verify", help="Re-score each query's top candidates "
                                                "by SIFT + RANSAC geometric verification (matching track; default "
                                                "on).")] = None,
    shortlist: opt.shortlist(f"Candidates verified per query {default_of(VerifyConfig, 'shortlist')}.") = None,
    promote: Annotated[str | None, typer.Option(help="Which verified pairs get the score bonus: significant "
                                                "(fewer than --nfa chance verifications as good expected over all "
                                                "the pairs verified in the run, a-contrario) or min-inliers (at "
                                                "least --min-inliers inliers, the rule of earlier versions) "
                                                f"{default_of(VerifyConfig, 'promote')}.")] = None,
    nfa: Annotated[float | None, typer.Option(help="With --promote significant: the largest number of false alarms "
                                            f"that counts as evidence {default_of(VerifyConfig, 'nfa')}.")] = None,
    min_inliers: Annotated[int | None, typer.Option(help="With --promote min-inliers: inliers below this give no "
                                                    "verification bonus "
                                                    f"{default_of(VerifyConfig, 'min_inliers')}.")] = None,
    model: opt.model(f"Backbone name or model file for folders {_d('model')}.") = None,
    weights: opt.weights() = None,
    size: opt.size(f"Longer image side for descriptors (0: original size) {_d('size')}.") = None,
    scales: opt.scales(f"Comma-separated descriptor scales, e.g. 1,0.7071 {_d('scales')}.") = None,
    shard: opt.shard("Only describe block I of N of the database folder (I/N) into --database-features.") = None,
    device: opt.Device = None,
    workers: opt.workers(f"Image decoding worker processes {_d('workers')}.") = None,
    block_size: opt.block_size(f"Queries per search block (bounds memory) {_d('block_size')}.") = None,
):
    """Detect edited copies (DISC21): global descriptors, PCA-whitening and score normalisation with the
    training images, multi-view queries, local verification; writes the matching-track CSV and/or the
    descriptor-track HDF5. Ids are file stems. Score with `rkit evaluate matches.csv --gt ground_truth.csv`.

    Example: rkit copy-detect --queries Q/ --database R/ --training T/ -o matches.csv --descriptors desc.h5
    Example: rkit copy-detect --database R/ --shard 2/8 --database-features refs.2.h5
    Built index: rkit copy-detect --queries q.h5 --database refs.h5 --index refs.index.h5 --no-verify -o m.csv
    """
    from retrievalkit.copydetect.stage import copy_detect, extract_reference_shard
    from retrievalkit.images.discover import parse_shard

    if database is None:
        raise UsageError("missing --database (a folder of database images or their features file)")
    if verify is False or (output is None and descriptors is not None):
        refuse_inapplicable("copy-detect without verification (--no-verify, or --descriptors only)",
                            {"--shortlist": shortlist, "--promote": promote, "--nfa": nfa,
                             "--min-inliers": min_inliers})
    vdef = VerifyConfig()
    if (promote or vdef.promote) == "min-inliers":
        refuse_inapplicable("--promote min-inliers (it is an option of --promote significant)", {"--nfa": nfa})
    else:
        refuse_inapplicable("--promote significant (it is an option of --promote min-inliers)",
                            {"--min-inliers": min_inliers})
    vcfg = None if verify is False else VerifyConfig(
        shortlist=vdef.shortlist if shortlist is None else shortlist,
        promote=vdef.promote if promote is None else promote, nfa=vdef.nfa if nfa is None else nfa,
        min_inliers=vdef.min_inliers if min_inliers is None else min_inliers)
    sc = parse_floats(scales, "--scales")
    cfg = config_from_options(
        CopyDetectConfig, model=model, weights=str(weights) if weights else None, size=size,
        scales=tuple(sc) if sc else None, query_views=query_views, combine=combine, dim=dim, shrinkage=shrinkage,
        norm_beta=norm_beta, norm_k=norm_k, norm_stat=norm_stat, top_k=top_k, max_rows=max_rows,
        workers=workers, block_size=block_size)
    cfg.verify = vcfg
    cfg.size = cfg.size or None
    cfg.device = resolve_device(device)
    cfg.check()
    if shard is not None:
        if output is not None:
            raise UsageError("-o is the matching-track CSV; with --shard write the database block with "
                             "--database-features FILE")
        refuse_inapplicable("copy-detect --shard (it only describes a block of the database)", {
            "--queries": queries, "--training": training, "--descriptors": descriptors, "-k/--top-k": top_k,
            "--max-rows": max_rows, "--norm-beta": norm_beta, "--norm-k": norm_k, "--norm-stat": norm_stat,
            "--dim": dim, "--shrinkage": shrinkage, "--query-views": query_views, "--combine": combine,
            "--verify/--no-verify": verify, "--shortlist": shortlist, "--promote": promote, "--nfa": nfa,
            "--min-inliers": min_inliers, "--block-size": block_size, "--index": index or None})
        if database_features is None:
            raise UsageError("--shard writes the block's features: give --database-features refs.I.h5")
        if not database.is_dir():
            raise UsageError(f"--shard needs a database folder, got {database}")

        def on_failure(name: str, reason: str) -> None:
            err_console.print(f"[yellow]warning:[/] {database / name}: {reason}; skipped (recorded in the output)",
                              soft_wrap=True)

        with progress_bar("describe database", None) as adv:
            echo_path(extract_reference_shard(database, database_features, cfg, shard=parse_shard(shard),
                                              progress=adv, on_failure=on_failure))
        return
    refuse_inapplicable("copy-detect without --shard", {"--database-features": database_features})
    if queries is None:
        raise UsageError("give --queries (a folder of query images or their features file)")
    if output is not None and output.suffix.lower() in (".h5", ".hdf5"):
        raise UsageError(f"-o {output}: -o is the matching-track CSV (e.g. matches.csv); "
                         f"write descriptors with --descriptors {output}")
    if descriptors is not None and descriptors.suffix.lower() == ".csv":
        raise UsageError(f"--descriptors {descriptors}: that is the descriptor-track HDF5 file (e.g. desc.h5); "
                         f"write matches with -o {descriptors}")
    if output is None and descriptors is not None:
        refuse_inapplicable("copy-detect --descriptors only (options of the matching track, -o)", {
            "-k/--top-k": top_k, "--max-rows": max_rows, "--verify/--no-verify": verify, "--combine": combine,
            "--index": index or None})
    cfg = cfg.resolved(training is not None)  # refuses --dim/--norm-beta without --training
    if training is None:
        info("[yellow]note:[/] no --training: score normalisation and PCA-whitening are off")

    with phase_bars() as (advance, on_phase):
        out = copy_detect(queries, database, output, cfg, training=training, descriptors=descriptors,
                          index=index or None, progress=advance, on_phase=on_phase, log=info)
    if output is not None:
        echo_path(out)
    if descriptors is not None:
        echo_path(out if output is None else Path(descriptors))


_RENAMED = {"--references": "--database", "--pca-dim": "--dim", "--pca-shrink": "--shrinkage",
            "--max-per-query": "-k/--top-k", "--verify-top": "--shortlist", "--verify-min-inliers": "--min-inliers",
            "--block": "--block-size"}


def register(app: typer.Typer) -> None:
    command(app, "copy-detect", copy_detect_cmd, renamed=_RENAMED)
