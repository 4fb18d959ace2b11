"""``rkit verify``: spatial verification re-ranking of a shortlist with local features."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrievalkit.cli.common import echo_path, handle_errors, progress_bar


@handle_errors
def verify_cmd(
    ranks: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Ranks file to re-rank (any "
                                          "method: global search, ASMK, diffusion).")],
    queries_locals: Annotated[Path, typer.Option("--queries-locals", exists=True, dir_okay=False,
                                                 help="Local features of the queries.")],
    database_locals: Annotated[Path, typer.Option("--database-locals", exists=True, dir_okay=False,
                                                  help="Local features of the database (same kind).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Re-ranked ranks file to write.")],
    top_k: Annotated[int, typer.Option(help="Shortlist length verified per query.")] = 100,
    method: Annotated[str, typer.Option(help="Geometric model: homography, affine or fundamental.")]
    = "homography",
    ratio: Annotated[float | None, typer.Option(help="Lowe ratio test (0: off). Default: 0.8 for SIFT, off "
                                                   "for deep locals.")] = None,
    no_mutual: Annotated[bool, typer.Option("--no-mutual", help="Do not require mutual nearest neighbours.")]
    = False,
    threshold: Annotated[float | None, typer.Option(help="RANSAC inlier threshold in pixels of the original "
                                                       "images. Default: 8 for SIFT; deep: half the median "
                                                       "feature cell (at least 8).")] = None,
    min_inliers: Annotated[int, typer.Option(help="Inliers needed to count an image as verified.")] = 10,
    view_tilts: Annotated[str | None, typer.Option(help="SIFT locals: also match simulated tilted views of the "
                                                   "query (ASIFT/MODS-style), e.g. 2,4,6 — for extreme viewpoint "
                                                   "changes; ~5 s per query.")] = None,
):
    """Re-rank the top of each query's list by RANSAC inliers of local-feature matches.

    Example: rkit verify ranks.h5 --queries-locals q.loc.h5 --database-locals db.loc.h5 -o ranks.v.h5
    Example: rkit verify f.h5 --queries-locals q.sift.h5 --database-locals d.sift.h5 --top-k 20 --view-tilts 2,4 -o v.h5
    """
    from retrievalkit.cli.common import parse_floats
    from retrievalkit.io.ranks import read_ranks
    from retrievalkit.verify.rerank import VerifyParams, verify_ranks

    tilts = tuple(parse_floats(view_tilts, "--view-tilts") or ())
    params = VerifyParams(method=method, ratio=ratio, mutual=not no_mutual, threshold=threshold,
                          min_inliers=min_inliers, view_tilts=tilts)
    nq = len(read_ranks(ranks).query_names)
    with progress_bar("verify", nq) as adv:
        out = verify_ranks(ranks, queries_locals, database_locals, output, top_k=top_k, params=params,
                           progress=adv)
    echo_path(out)


def register(app: typer.Typer) -> None:
    app.command("verify")(verify_cmd)
