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
    index: Annotated[list[Path] | None, typer.Option("--index", exists=True, dir_okay=False, help="Search this "
                                                     "built index (rkit index build) instead; repeat for the "
                                                     "parts of a sharded index (top-k merged exactly).")] = None,
    shortlist: Annotated[int | None, typer.Option(help="With --index: re-rank each query's best N exactly with "
                                                  "the database features.")] = None,
    nprobe: Annotated[int | None, typer.Option(help="With --index (IVF): lists visited (default nlist/64 within "
                                               "[8, nlist]).")] = None,
    ef: Annotated[int | None, typer.Option(help="With --index (HNSW): efSearch (default max(64, k)).")] = None,
    gpu_shard: Annotated[bool, typer.Option("--gpu-shard", help="With --index and --device cuda: split the index "
                                            "over the GPUs instead of a replica on each.")] = False,
):
    """Exact inner-product search of every query against the database, or search of a built index (--index).

    Example: rkit index search --database db.h5 --queries q.h5 -o ranks.h5 -k 100
    Built index: rkit index search --database db.h5 --queries q.h5 --index db.index.h5 --shortlist 200 -o ranks.h5
    """
    from retrievalkit.errors import UsageError

    cfg = config_from_options(SearchConfig, top_k=top_k, block_size=block_size)
    if index:
        from retrievalkit.cli.index_build import search_with_index

        q = queries if queries is not None else (queries_pos if queries_pos is not None else database_pos)
        db = database if database is not None else (database_pos if queries_pos is not None else None)
        if q is None:
            raise UsageError("--index: give the query features (--queries q.h5)")
        return search_with_index(index, q, db, output, cfg.top_k, device or "auto", cfg.block_size, shortlist,
                                 nprobe, ef, gpu_shard)
    for name, val in (("--shortlist", shortlist), ("--nprobe", nprobe), ("--ef", ef), ("--gpu-shard", gpu_shard)):
        if val:
            raise UsageError(f"{name} applies to a built index (--index); exact search has no such setting")
    from retrievalkit.search.stages import search

    db = pick("--database", database, database_pos)
    q = pick("--queries", queries, queries_pos)
    dev = resolve_device(device)
    with progress_bar("search", None) as adv:
        out = search(db, q, output, cfg, device=dev, progress=adv)
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
    index: Annotated[list[Path] | None, typer.Option("--index", exists=True, dir_okay=False, help="Approximate "
                                                     "graph through this built index of the database (repeat "
                                                     "for parts).")] = None,
    factory: Annotated[str | None, typer.Option(help="Approximate graph through a faiss index built here, e.g. "
                                                "HNSW32 or IVF4096,Flat.")] = None,
    train_size: Annotated[int | None, typer.Option(help="With --factory: training vectors.")] = None,
    shortlist: Annotated[int | None, typer.Option(help="Approximate: re-rank each item's best N exactly.")] = None,
    nprobe: Annotated[int | None, typer.Option(help="Approximate (IVF): lists visited.")] = None,
    ef: Annotated[int | None, typer.Option(help="Approximate (HNSW): efSearch.")] = None,
    recall_sample: Annotated[int, typer.Option(help="Approximate: items whose exact neighbours measure the "
                                               "graph's recall (0: skip).")] = 1000,
):
    """The database's exact k-nearest-neighbour graph, input of `rkit diffuse` and `rkit manifold-mine`;
    approximate (for millions of items) with --index or --factory, its recall against exact printed.

    Example: rkit index knn db.h5 -o knn.h5 -k 50
    Approximate: rkit index knn db.h5 -o knn.h5 -k 50 --factory HNSW32
    """
    from retrievalkit.errors import UsageError

    db = pick("--database", database, database_pos)
    cfg = config_from_options(KnnConfig, top_k=top_k, block_size=block_size)
    if index or factory is not None:
        from retrievalkit.cli.index_build import knn_with_index

        if index and factory is not None:
            raise UsageError("give either --index or --factory, not both")
        return knn_with_index(db, output, cfg.top_k, device or "auto", cfg.block_size, index or None, factory,
                              train_size, shortlist, nprobe, ef, recall_sample)
    for name, val in (("--train-size", train_size), ("--shortlist", shortlist), ("--nprobe", nprobe),
                      ("--ef", ef)):
        if val is not None:
            raise UsageError(f"{name} applies to an approximate graph (--index or --factory)")
    from retrievalkit.search.stages import knn

    dev = resolve_device(device)
    with progress_bar("knn", None) as adv:
        out = knn(db, output, cfg, device=dev, progress=adv)
    echo_path(out)


def register(app: typer.Typer) -> None:
    import importlib

    command(index_app, "search", search_cmd, renamed={"--block": "--block-size"})
    command(index_app, "knn", knn_cmd, renamed={"--block": "--block-size"})

    # Other index kinds live in their own modules and add commands to ``index_app``.
    for mod in ("index_asmk", "index_build"):
        try:
            importlib.import_module(f"retrievalkit.cli.{mod}").register_index(index_app)
        except ModuleNotFoundError as e:
            if e.name != f"retrievalkit.cli.{mod}":
                raise
    app.add_typer(index_app, name="index")
