"""``rkit verify``: spatial verification re-ranking of a shortlist with local features."""

from __future__ import annotations

from typing import Annotated

import typer

from retrievalkit.cli import options as opt
from retrievalkit.cli.common import echo_path, handle_errors, progress_bar
from retrievalkit.cli.options import command, config_from_options, default_of, refuse_inapplicable
from retrievalkit.configs.verify import VerifyParams

_V = VerifyParams


@handle_errors
def verify_cmd(
    ranks: opt.input_file("Ranks file to re-rank (any method: global search, ASMK, diffusion, fusion)."),
    queries: opt.queries("Local features of the queries (rkit extract --local)."),
    database: opt.database("Local features of the database (same kind)."),
    output: opt.output("Re-ranked ranks file to write."),
    shortlist: opt.shortlist(f"Top of each query's list that is verified {default_of(_V, 'shortlist')}.") = None,
    method: opt.method("Geometric check: a model fitted by RANSAC (homography, affine or fundamental) or hpm "
                       "(Hough Pyramid Matching: relaxed matching of similarity transformations, no model, "
                       f"faster) {default_of(_V, 'method')}.") = None,
    ratio: Annotated[float | None, typer.Option(help="Lowe ratio test in [0, 1] (0: off). Default: 0.8 for SIFT, "
                                                "off for deep locals.")] = None,
    mutual: opt.mutual(f"Keep mutual nearest-neighbour matches only {default_of(_V, 'mutual')}.") = None,
    threshold: Annotated[float | None, typer.Option(help="RANSAC inlier threshold in pixels of the original "
                                                    "images. Default: 8 for SIFT; deep: half the median "
                                                    "feature cell (at least 8).")] = None,
    promote: Annotated[str | None, typer.Option(help="Which images move up: significant (fewer than --nfa chance "
                                                "verifications as good expected per query, a-contrario; the "
                                                "others keep their order) or min-inliers (at least --min-inliers "
                                                f"inliers, the rule of earlier versions) {default_of(_V, 'promote')}."
                                                )] = None,
    nfa: Annotated[float | None, typer.Option(help="With --promote significant: the largest number of false alarms "
                                            f"that counts as evidence {default_of(_V, 'nfa')}.")] = None,
    min_inliers: Annotated[int | None, typer.Option(help="With --promote min-inliers: inliers needed to count an "
                                                    f"image as verified {default_of(_V, 'min_inliers')}.")] = None,
    view_tilts: Annotated[str | None, typer.Option(help="SIFT locals: also match simulated tilted views of the "
                                                   "query (ASIFT/MODS-style), e.g. 2,4,6 — for extreme viewpoint "
                                                   "changes; ~5 s per query. Default: off.")] = None,
):
    """Re-rank the top of each query's list by the geometric evidence of local-feature matches.

    By default only images with conclusive evidence move up; the others keep their order.

    Example: rkit verify ranks.h5 --queries q.loc.h5 --database db.loc.h5 -o ranks.v.h5
    Example: rkit verify ranks.h5 --queries q.sift.h5 --database db.sift.h5 --method hpm -o ranks.v.h5
    Example: rkit verify f.h5 --queries q.sift.h5 --database d.sift.h5 --shortlist 20 --view-tilts 2,4 -o v.h5
    """
    from retrievalkit.cli.common import parse_floats
    from retrievalkit.io.ranks import read_ranks
    from retrievalkit.verify.rerank import verify_ranks

    tilts = parse_floats(view_tilts, "--view-tilts")
    rule = promote or _V.promote
    if rule == "min-inliers":
        refuse_inapplicable("--promote min-inliers (it is an option of --promote significant)", {"--nfa": nfa})
    else:
        refuse_inapplicable("--promote significant (it is an option of --promote min-inliers)",
                            {"--min-inliers": min_inliers})
    if (method or _V.method) == "hpm":
        refuse_inapplicable("--method hpm (simulated views are matched with a RANSAC model)",
                            {"--view-tilts": view_tilts})
    params = config_from_options(VerifyParams, shortlist=shortlist, method=method, ratio=ratio, mutual=mutual,
                                 threshold=threshold, promote=promote, nfa=nfa, min_inliers=min_inliers,
                                 view_tilts=tuple(tilts) if tilts else None)
    nq = len(read_ranks(ranks).query_names)
    with progress_bar("verify", nq) as adv:
        out = verify_ranks(ranks, queries, database, output, params, progress=adv)
    echo_path(out)


def register(app: typer.Typer) -> None:
    command(app, "verify", verify_cmd, renamed={
        "--queries-locals": "--queries", "--database-locals": "--database",
        "--top-k": "--shortlist (in verify the shortlist is what is verified)"})
