"""``rkit diffuse``: manifold ranking (CG, truncated, spectral) and query expansion; ``rkit diffuse-prepare``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrievalkit.cli.common import echo_path, handle_errors, info, progress_bar, resolve_device


@handle_errors
def diffuse_cmd(
    database: Annotated[Path, typer.Option("--database", "-d", exists=True, dir_okay=False,
                                           help="Database features (feats.h5; regions: regional diffusion).")],
    queries: Annotated[Path, typer.Option("--queries", exists=True, dir_okay=False,
                                          help="Query features (feats.h5). Queries are never inserted in the graph.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Ranks file to write.")],
    graph: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                                  help="kNN graph of the database (rkit index knn); its first "
                                                       "--graph-k columns are used. Default: built here.")] = None,
    method: Annotated[str, typer.Option(help="cg (default), truncated, spectral, hybrid (spectral + CG on the rest), "
                                             "none (plain search); shortcuts: "
                                             "aqe, alpha-qe, alpha-dba (= none + that expansion).")] = "cg",
    qe: Annotated[str, typer.Option(help="Query expansion before ranking/diffusion: none, aqe, alpha-qe.")] = "none",
    qe_n: Annotated[int, typer.Option(help="Query expansion: top-n database vectors.")] = 10,
    qe_alpha: Annotated[float, typer.Option(help="alpha-QE weight exponent.")] = 3.0,
    dba: Annotated[bool, typer.Option("--dba/--no-dba", help="alpha-DBA on the database vectors first.")] = False,
    dba_k: Annotated[int, typer.Option(help="alpha-DBA neighbours.")] = 10,
    graph_k: Annotated[int | None, typer.Option(help="Graph neighbours per item. Default: from the database "
                                                        "size, 1 percent of the items within [5, 50].")] = None,
    mutual: Annotated[bool, typer.Option("--mutual/--no-mutual", help="Keep mutual neighbours only.")] = True,
    gamma: Annotated[float, typer.Option(help="Similarity exponent of graph and query weights.")] = 3.0,
    alpha: Annotated[float, typer.Option(help="Diffusion alpha in (0, 1).")] = 0.99,
    query_k: Annotated[int, typer.Option(help="Database neighbours that seed each query.")] = 10,
    iters: Annotated[int, typer.Option(help="Maximum CG iterations (hybrid: CG iterations after the spectral "
                                            "part, 0 allowed).")] = 20,
    tol: Annotated[float, typer.Option(help="CG relative residual to stop at.")] = 1e-6,
    trunc_n: Annotated[int, typer.Option(help="truncated: subgraph of each query's top-n.")] = 1000,
    spectral: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                                     help="Eigenpairs (rkit diffuse-prepare) for spectral "
                                                          "or hybrid.")] = None,
    rank: Annotated[int | None, typer.Option(help="spectral/hybrid without --spectral: eigenpairs to "
                                                     "compute (default min(N, 1000)); hybrid with --spectral: "
                                                     "the first r of the file.")] = None,
    fuse: Annotated[float | None, typer.Option(help="Weight in [0, 1] of the Euclidean score mixed into the "
                                                       "diffusion score (0: pure diffusion).")] = None,
    pool: Annotated[str, typer.Option(help="Regions: pool region scores to images by max or sum.")] = "max",
    topk: Annotated[int, typer.Option("-k", "--topk", help="Results kept per query.")] = 1000,
    block: Annotated[int | None, typer.Option(help="Queries per block (default: from the memory needed).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N].")] = "auto",
):
    """Rank a database by manifold diffusion from new queries (or by query expansion).

    Each query seeds the graph through its --query-k nearest database items (weights s^gamma) and
    (I - alpha S) f = y is solved for all queries of a block at once.

    Example: rkit diffuse --database db.h5 --queries q.h5 --graph knn.h5 -o ranks.h5 --method cg
    """
    from retrievalkit.diffusion.rank import METHODS, DiffusionConfig
    from retrievalkit.diffusion.stage import diffuse
    from retrievalkit.errors import UsageError

    shortcuts = {"aqe": ("none", "aqe", dba), "alpha-qe": ("none", "alpha-qe", dba), "alpha-dba": ("none", qe, True)}
    if method not in shortcuts and method not in METHODS:
        raise UsageError(f"--method {method!r}: expected one of {', '.join([*METHODS, *shortcuts])}")
    m, q_exp, use_dba = shortcuts.get(method, (method, qe, dba))
    cfg = DiffusionConfig(method=m, qe=q_exp, qe_n=qe_n, qe_alpha=qe_alpha, dba=use_dba, dba_k=dba_k,
                          graph_k=graph_k, mutual=mutual, gamma=gamma, alpha=alpha, query_k=query_k, iters=iters,
                          tol=tol, trunc_n=trunc_n, rank=rank, fuse=fuse, pool=pool, topk=topk, block=block)
    dev = resolve_device(device)
    with progress_bar(f"diffuse ({m})", None) as adv:
        out = diffuse(database, queries, output, graph=graph, spectral=spectral, config=cfg, device=dev, progress=adv)
    echo_path(out)


@handle_errors
def prepare_cmd(
    database: Annotated[Path, typer.Option("--database", "-d", exists=True, dir_okay=False,
                                           help="Database features (feats.h5).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Eigenpairs file (rkit/spectral) to write.")],
    graph: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                                  help="kNN graph of the database (default: built here).")] = None,
    rank: Annotated[int | None, typer.Option(help="Eigenpairs to keep (default min(N, 1000)).")] = None,
    graph_k: Annotated[int | None, typer.Option(help="Graph neighbours per item (default: from the size).")] = None,
    mutual: Annotated[bool, typer.Option("--mutual/--no-mutual", help="Keep mutual neighbours only.")] = True,
    gamma: Annotated[float, typer.Option(help="Similarity exponent.")] = 3.0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N] (graph building).")] = "auto",
):
    """Offline step of fast spectral ranking: the top eigenpairs of the database graph.

    Example: rkit diffuse-prepare --database db.h5 --graph knn.h5 --rank 500 -o spectral.h5
    """
    from retrievalkit.diffusion.stage import prepare_spectral

    info("computing eigenpairs (Lanczos) ...")
    out = prepare_spectral(database, output, graph=graph, rank=rank, graph_k=graph_k, mutual=mutual, gamma=gamma,
                           device=resolve_device(device))
    echo_path(out)


def register(app: typer.Typer) -> None:
    app.command("diffuse")(diffuse_cmd)
    app.command("diffuse-prepare")(prepare_cmd)
