"""``rkit index``: exact search, kNN graphs (and, when built, ASMK)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrievalkit.cli.common import echo_path, handle_errors, progress_bar, resolve_device

index_app = typer.Typer(help="Search a database, build kNN graphs and indexes.", no_args_is_help=True)

ExistingFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]


@index_app.command("search")
@handle_errors
def search_cmd(
    database: Annotated[Path | None, typer.Argument(exists=True, dir_okay=False, help="Database features "
                                                    "(feats.h5); with --index optional (needed by --shortlist).",
                                                    show_default=False)] = None,
    queries: Annotated[Path | None, typer.Argument(exists=True, dir_okay=False, help="Query features (feats.h5).",
                                                   show_default=False)] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Ranks file to write.")] = ...,
    k: Annotated[int, typer.Option("-k", help="Results kept per query.")] = 100,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N].")] = "auto",
    block: Annotated[int, typer.Option(help="Queries per block (bounds memory).")] = 4096,
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

    Example: rkit index search db.h5 q.h5 -o ranks.h5 -k 100
    Built index: rkit index search db.h5 q.h5 --index db.index.h5 --shortlist 200 -o ranks.h5
    """
    from retrievalkit.errors import UsageError

    if index:
        from retrievalkit.cli.index_build import search_with_index

        if queries is None:  # one positional: the queries
            database, queries = None, database
        return search_with_index(index, queries, database, output, k, device, block, shortlist, nprobe, ef,
                                 gpu_shard)
    if database is None or queries is None:
        raise UsageError("give the database and the query features (rkit index search db.h5 q.h5 -o ranks.h5)")
    for name, val in (("--shortlist", shortlist), ("--nprobe", nprobe), ("--ef", ef), ("--gpu-shard", gpu_shard)):
        if val:
            raise UsageError(f"{name} applies to a built index (--index); exact search has no such setting")
    from retrievalkit.search.stages import search

    dev = resolve_device(device)
    with progress_bar("search", None) as adv:
        out = search(database, queries, output, k=k, device=dev, block=block, progress=adv)
    echo_path(out)


@index_app.command("knn")
@handle_errors
def knn_cmd(
    database: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Database features (feats.h5).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="kNN-graph file to write.")],
    k: Annotated[int, typer.Option("-k", help="Neighbours per item (self excluded).")] = 50,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N].")] = "auto",
    block: Annotated[int, typer.Option(help="Rows per block (bounds memory).")] = 4096,
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
    if index or factory is not None:
        from retrievalkit.cli.index_build import knn_with_index
        from retrievalkit.errors import UsageError

        if index and factory is not None:
            raise UsageError("give either --index or --factory, not both")
        return knn_with_index(database, output, k, device, block, index or None, factory, train_size, shortlist,
                              nprobe, ef, recall_sample)
    for name, val in (("--train-size", train_size), ("--shortlist", shortlist), ("--nprobe", nprobe),
                      ("--ef", ef)):
        if val is not None:
            from retrievalkit.errors import UsageError

            raise UsageError(f"{name} applies to an approximate graph (--index or --factory)")
    from retrievalkit.search.stages import knn

    dev = resolve_device(device)
    with progress_bar("knn", None) as adv:
        out = knn(database, output, k=k, device=dev, block=block, progress=adv)
    echo_path(out)


def register(app: typer.Typer) -> None:
    import importlib

    # Other index kinds live in their own modules and add commands to ``index_app``.
    for mod in ("index_asmk", "index_build"):
        try:
            importlib.import_module(f"retrievalkit.cli.{mod}").register_index(index_app)
        except ModuleNotFoundError as e:
            if e.name != f"retrievalkit.cli.{mod}":
                raise
    app.add_typer(index_app, name="index")
