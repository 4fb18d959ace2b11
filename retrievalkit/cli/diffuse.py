"""``rkit diffuse``: manifold ranking (CG, truncated, spectral) and query expansion; ``rkit diffuse-prepare``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrievalkit.cli import options as opt
from retrievalkit.cli.common import echo_path, handle_errors, info, progress_bar, resolve_device
from retrievalkit.cli.options import command, config_from_options, default_of, refuse_inapplicable
from retrievalkit.configs.diffusion import DiffusionConfig
from retrievalkit.errors import UsageError

_D = DiffusionConfig


def _d(field: str) -> str:
    return default_of(_D, field)


@handle_errors
def diffuse_cmd(
    database: opt.database("Database features (feats.h5; regions: regional diffusion)."),
    queries: opt.queries("Query features (feats.h5). Queries are never inserted in the graph."),
    output: opt.output("Ranks file to write."),
    graph: opt.graph("kNN graph of the database (rkit index knn); its first --graph-k columns are used. "
                     "Default: built here.") = None,
    index: Annotated[list[Path] | None, typer.Option("--index", exists=True, dir_okay=False, help="A built faiss "
                                                     "index of the database (rkit index build; repeat for parts): "
                                                     "the kNN graph is searched through it instead of exactly "
                                                     "(approximate for IVF/PQ/HNSW).")] = None,
    method: opt.method("cg (default), truncated, spectral, hybrid (spectral + CG on the rest), none (plain "
                       "search); shortcuts: aqe, alpha-qe, alpha-dba (= none + that expansion).") = None,
    qe: Annotated[str | None, typer.Option(help=f"Query expansion before ranking/diffusion: none, aqe, alpha-qe "
                                           f"{_d('qe')}.")] = None,
    qe_n: Annotated[int | None, typer.Option(help=f"Query expansion: top-n database vectors {_d('qe_n')}.")]
    = None,
    qe_alpha: Annotated[float | None, typer.Option(help=f"alpha-QE weight exponent {_d('qe_alpha')}.")] = None,
    dba: Annotated[bool | None, typer.Option("--dba/--no-dba", help="alpha-DBA on the database vectors first "
                                             f"{_d('dba')}.")] = None,
    dba_k: Annotated[int | None, typer.Option(help=f"alpha-DBA neighbours {_d('dba_k')}.")] = None,
    graph_k: opt.graph_k("Graph neighbours per item. Default: from the database size, 1 percent of the items "
                         "within [5, 50].") = None,
    mutual: opt.mutual(f"Keep mutual neighbours only {_d('mutual')}.") = None,
    gamma: Annotated[float | None, typer.Option(help="Similarity exponent of graph and query weights, > 0 "
                                                f"{_d('gamma')}.")] = None,
    alpha: Annotated[float | None, typer.Option(help=f"Diffusion alpha in (0, 1) {_d('alpha')}.")] = None,
    query_k: Annotated[int | None, typer.Option(help=f"Database neighbours that seed each query {_d('query_k')}.")]
    = None,
    iters: opt.iters(f"cg, truncated: maximum CG iterations; hybrid: CG iterations after the spectral part, 0 "
                     f"allowed {_d('iters')}.") = None,
    tol: Annotated[float | None, typer.Option(help=f"cg, truncated, hybrid: relative residual to stop at "
                                              f"{_d('tol')}.")]
    = None,
    trunc_n: Annotated[int | None, typer.Option(help=f"truncated: subgraph of each query's top-n {_d('trunc_n')}.")]
    = None,
    spectral: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                                     help="spectral, hybrid: eigenpairs (rkit diffuse-prepare).")]
    = None,
    rank: Annotated[int | None, typer.Option(help="spectral/hybrid without --spectral: eigenpairs to compute "
                                             "(default min(N, 1000)); hybrid with --spectral: the first r of the "
                                             "file.")] = None,
    fuse: Annotated[float | None, typer.Option(help="Weight in [0, 1] of the Euclidean score mixed into the "
                                               "diffusion score (0: pure diffusion). Default: 0.9 below 5000 "
                                               "database images, else 0.")] = None,
    pool: Annotated[str | None, typer.Option(help=f"Regions: pool region scores to images by max or sum "
                                             f"{_d('pool')}.")] = None,
    top_k: opt.top_k(f"Results kept per query {_d('top_k')}.") = None,
    block_size: opt.block_size("Queries per block (default: from the memory needed).") = None,
    device: opt.Device = None,
):
    """Rank a database by manifold diffusion from new queries (or by query expansion).

    Each query seeds the graph through its --query-k nearest database items (weights s^gamma) and
    (I - alpha S) f = y is solved for all queries of a block at once.

    Example: rkit diffuse --database db.h5 --queries q.h5 --graph knn.h5 -o ranks.h5 --method cg
    Built index: rkit diffuse --database db.h5 --queries q.h5 --index db.index.h5 -o ranks.h5
    """
    from retrievalkit.configs.diffusion import METHODS
    from retrievalkit.diffusion.stage import diffuse

    shortcuts = {"aqe": ("none", "aqe", dba), "alpha-qe": ("none", "alpha-qe", dba), "alpha-dba": ("none", qe, True)}
    if method is not None and method not in shortcuts and method not in METHODS:
        raise UsageError(f"--method {method!r}: expected one of {', '.join([*METHODS, *shortcuts])}")
    if method in shortcuts:
        refuse_inapplicable(f"--method {method} (a shortcut that sets it)", {"--qe": qe} if method != "alpha-dba"
                            else {"--dba/--no-dba": dba})
    m, q_exp, use_dba = shortcuts.get(method, (method, qe, dba))
    cfg = config_from_options(DiffusionConfig, method=m, qe=q_exp, qe_n=qe_n, qe_alpha=qe_alpha, dba=use_dba,
                              dba_k=dba_k, graph_k=graph_k, mutual=mutual, gamma=gamma, alpha=alpha, query_k=query_k,
                              iters=iters, tol=tol, trunc_n=trunc_n, rank=rank, fuse=fuse, pool=pool, top_k=top_k,
                              block_size=block_size)
    _refuse_for_method(cfg, method or cfg.method, dict(graph=graph, index=index or None, graph_k=graph_k,
                       mutual=mutual, gamma=gamma, alpha=alpha, query_k=query_k, iters=iters, tol=tol,
                       trunc_n=trunc_n, spectral=spectral, rank=rank, fuse=fuse, qe_n=qe_n, qe_alpha=qe_alpha,
                       dba_k=dba_k))
    dev = resolve_device(device)
    with progress_bar(f"diffuse ({cfg.method})", None) as adv:
        out = diffuse(database, queries, output, cfg, graph=graph, spectral=spectral, index=index or None,
                      device=dev, progress=adv, log=info)
    echo_path(out)


#: the diffusion options each method uses (the others are refused)
_USES = {
    "none": set(),
    "cg": {"graph", "index", "graph_k", "mutual", "gamma", "alpha", "query_k", "iters", "tol", "fuse"},
    "truncated": {"graph", "index", "graph_k", "mutual", "gamma", "alpha", "query_k", "iters", "tol", "trunc_n",
                  "fuse"},
    "spectral": {"graph", "index", "graph_k", "mutual", "gamma", "alpha", "query_k", "spectral", "rank", "fuse"},
    "hybrid": {"graph", "index", "graph_k", "mutual", "gamma", "alpha", "query_k", "iters", "tol", "spectral", "rank",
               "fuse"},
}


def _refuse_for_method(cfg: DiffusionConfig, shown: str, given: dict) -> None:
    uses = set(_USES[cfg.method])
    if cfg.method == "spectral" and given["spectral"] is not None:
        uses -= {"graph", "index", "graph_k", "mutual", "rank"}  # the eigenpairs file fixes the graph
    diffusion_opts = set().union(*_USES.values())
    opt_name = {k: "--" + k.replace("_", "-") for k in given}
    opt_name["mutual"] = "--mutual/--no-mutual"
    if given["graph"] is not None and given["index"] is not None:
        refuse_inapplicable("--graph (it gives the graph that --index would search)", {"--index": given["index"]})
    for k, v in given.items():
        if k in diffusion_opts and k not in uses:
            users = [m for m, opts in _USES.items() if k in opts]
            refuse_inapplicable(f"--method {shown} (it is an option of --method {', '.join(users)})",
                                {opt_name[k]: v})
    if cfg.qe == "none":
        refuse_inapplicable("--qe none (query expansion is off)", {"--qe-n": given["qe_n"],
                                                                   "--qe-alpha": given["qe_alpha"]})
    if cfg.qe == "aqe":
        refuse_inapplicable("--qe aqe (plain average; --qe-alpha is alpha-qe's)", {"--qe-alpha": given["qe_alpha"]})
    if not cfg.dba:
        refuse_inapplicable("diffuse without --dba", {"--dba-k": given["dba_k"]})


@handle_errors
def prepare_cmd(
    database: opt.database("Database features (feats.h5)."),
    output: opt.output("Eigenpairs file (rkit/spectral) to write."),
    graph: opt.graph("kNN graph of the database (default: built here).") = None,
    rank: Annotated[int | None, typer.Option(help="Eigenpairs to keep (default min(N, 1000)).")] = None,
    graph_k: opt.graph_k("Graph neighbours per item (default: from the size, 1 percent within [5, 50]).") = None,
    mutual: opt.mutual(f"Keep mutual neighbours only {_d('mutual')}.") = None,
    gamma: Annotated[float | None, typer.Option(help=f"Similarity exponent, > 0 {_d('gamma')}.")] = None,
    device: opt.Device = None,
):
    """Offline step of fast spectral ranking: the top eigenpairs of the database graph.

    Example: rkit diffuse-prepare --database db.h5 --graph knn.h5 --rank 500 -o spectral.h5
    """
    from retrievalkit.diffusion.stage import prepare_spectral

    cfg = config_from_options(DiffusionConfig, method="spectral", rank=rank, graph_k=graph_k, mutual=mutual,
                              gamma=gamma)
    info("computing eigenpairs (Lanczos) ...")
    out = prepare_spectral(database, output, cfg, graph=graph, device=resolve_device(device))
    echo_path(out)


_RENAMED = {"-d": "--database", "--topk": "-k/--top-k", "--block": "--block-size"}


def register(app: typer.Typer) -> None:
    command(app, "diffuse", diffuse_cmd, renamed=_RENAMED)
    command(app, "diffuse-prepare", prepare_cmd, renamed={"-d": "--database"})
