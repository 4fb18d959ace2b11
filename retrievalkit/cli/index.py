"""``rkit index``: exact search, kNN graphs (and, when built, ASMK)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrievalkit.cli import options as opt
from retrievalkit.cli.common import echo_path, handle_errors, progress_bar, resolve_device
from retrievalkit.cli.options import command, config_from_options, default_of, pick
from retrievalkit.configs.search import KnnConfig, SearchConfig

index_app = typer.Typer(help="Search a database, build kNN graphs and indexes.", no_args_is_help=True)

@handle_errors
def search_cmd(
    database_pos: Annotated[Path | None, typer.Argument(
        exists=True, dir_okay=False, metavar="DATABASE", help="Older form of --database.")] = None,
    queries_pos: Annotated[Path | None, typer.Argument(
        exists=True, dir_okay=False, metavar="QUERIES", help="Older form of --queries.")] = None,
    database: opt.database("Database features (feats.h5).", required=False) = None,
    queries: opt.queries("Query features (feats.h5).", required=False) = None,
    output: opt.output("Ranks file to write.") = ...,
    top_k: opt.top_k(f"Results kept per query {default_of(SearchConfig, 'top_k')}.") = None,
    device: opt.Device = None,
    block_size: opt.block_size(f"Queries per block (bounds memory) {default_of(SearchConfig, 'block_size')}.")
    = None,
):
    """Exact inner-product search of every query against the database.

    Example: rkit index search --database db.h5 --queries q.h5 -o ranks.h5 -k 100
    """
    from retrievalkit.search.stages import search

    db = pick("--database", database, database_pos)
    q = pick("--queries", queries, queries_pos)
    cfg = config_from_options(SearchConfig, top_k=top_k, block_size=block_size)
    dev = resolve_device(device)
    with progress_bar("search", None) as adv:
        out = search(db, q, output, k=cfg.top_k, device=dev, block=cfg.block_size, progress=adv)
    echo_path(out)


@handle_errors
def knn_cmd(
    database_pos: Annotated[Path | None, typer.Argument(
        exists=True, dir_okay=False, metavar="DATABASE", help="Database features (feats.h5), or --database.")]
    = None,
    database: opt.database("Database features (feats.h5).", required=False) = None,
    output: opt.output("kNN-graph file to write.") = ...,
    top_k: opt.top_k(f"Neighbours kept per item, self excluded {default_of(KnnConfig, 'top_k')}.") = None,
    device: opt.Device = None,
    block_size: opt.block_size(f"Rows per block (bounds memory) {default_of(KnnConfig, 'block_size')}.") = None,
):
    """The database's exact k-nearest-neighbour graph, input of `rkit diffuse` and `rkit manifold-mine`.

    Example: rkit index knn db.h5 -o knn.h5 -k 50
    """
    from retrievalkit.search.stages import knn

    db = pick("--database", database, database_pos)
    cfg = config_from_options(KnnConfig, top_k=top_k, block_size=block_size)
    dev = resolve_device(device)
    with progress_bar("knn", None) as adv:
        out = knn(db, output, k=cfg.top_k, device=dev, block=cfg.block_size, progress=adv)
    echo_path(out)


def register(app: typer.Typer) -> None:
    import importlib

    command(index_app, "search", search_cmd, renamed={"--block": "--block-size"})
    command(index_app, "knn", knn_cmd, renamed={"--block": "--block-size"})

    # Other index kinds live in their own modules and add commands to ``index_app``.
    for mod in ("index_asmk",):
        try:
            importlib.import_module(f"retrievalkit.cli.{mod}").register_index(index_app)
        except ModuleNotFoundError as e:
            if e.name != f"retrievalkit.cli.{mod}":
                raise
    app.add_typer(index_app, name="index")
