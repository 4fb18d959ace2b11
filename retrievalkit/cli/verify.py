"""``rkit verify``: spatial verification re-ranking of a shortlist with local features."""

from __future__ import annotations

from typing import Annotated

import typer

from retrievalkit.cli import options as opt
from retrievalkit.cli.common import echo_path, handle_errors, progress_bar
from retrievalkit.cli.options import command, config_from_options, default_of
from retrievalkit.configs.verify import VerifyParams

_V = VerifyParams


@handle_errors
def verify_cmd(
    ranks: opt.input_file("Ranks file to re-rank (any method: global search, ASMK, diffusion, fusion)."),
    queries: opt.queries("Local features of the queries (rkit extract --local)."),
    database: opt.database("Local features of the database (same kind)."),
    output: opt.output("Re-ranked ranks file to write."),
    shortlist: opt.shortlist(f"Top of each query's list that is verified {default_of(_V, 'shortlist')}.") = None,
    method: opt.method(f"Geometric model: homography, affine or fundamental {default_of(_V, 'method')}.") = None,
    ratio: Annotated[float | None, typer.Option(help="Lowe ratio test in [0, 1] (0: off). Default: 0.8 for SIFT, "
                                                "off for deep locals.")] = None,
    mutual: opt.mutual(f"Keep mutual nearest-neighbour matches only {default_of(_V, 'mutual')}.") = None,
    threshold: Annotated[float | None, typer.Option(help="RANSAC inlier threshold in pixels of the original "
                                                    "images. Default: 8 for SIFT; deep: half the median "
                                                    "feature cell (at least 8).")] = None,
    min_inliers: Annotated[int | None, typer.Option(help="Inliers needed to count an image as verified "
                                                    f"{default_of(_V, 'min_inliers')}.")] = None,
    view_tilts: Annotated[str | None, typer.Option(help="SIFT locals: also match simulated tilted views of the "
                                                   "query (ASIFT/MODS-style), e.g. 2,4,6 — for extreme viewpoint "
                                                   "changes; ~5 s per query. Default: off.")] = None,
):
    """Re-rank the top of each query's list by RANSAC inliers of local-feature matches.

    Example: rkit verify ranks.h5 --queries q.loc.h5 --database db.loc.h5 -o ranks.v.h5
    Example: rkit verify f.h5 --queries q.sift.h5 --database d.sift.h5 --shortlist 20 --view-tilts 2,4 -o v.h5
    """
    from retrievalkit.cli.common import parse_floats
    from retrievalkit.io.ranks import read_ranks
    from retrievalkit.verify.rerank import verify_ranks

    tilts = parse_floats(view_tilts, "--view-tilts")
    params = config_from_options(VerifyParams, shortlist=shortlist, method=method, ratio=ratio, mutual=mutual,
                                 threshold=threshold, min_inliers=min_inliers,
                                 view_tilts=tuple(tilts) if tilts else None)
    nq = len(read_ranks(ranks).query_names)
    with progress_bar("verify", nq) as adv:
        out = verify_ranks(ranks, queries, database, output, params=params, progress=adv)
    echo_path(out)


def register(app: typer.Typer) -> None:
    command(app, "verify", verify_cmd, renamed={
        "--queries-locals": "--queries", "--database-locals": "--database",
        "--top-k": "--shortlist (in verify the shortlist is what is verified)"})
