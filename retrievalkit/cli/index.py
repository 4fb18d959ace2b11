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
    database: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Database features (feats.h5).")],
    queries: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Query features (feats.h5).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Ranks file to write.")],
    k: Annotated[int, typer.Option("-k", help="Results kept per query.")] = 100,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N].")] = "auto",
    block: Annotated[int, typer.Option(help="Queries per block (bounds memory).")] = 4096,
):
    """Exact inner-product search of every query against the database.

    Example: rkit index search db.h5 q.h5 -o ranks.h5 -k 100
    """
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
):
    """The database's exact k-nearest-neighbour graph, input of `rkit diffuse` and `rkit manifold-mine`.

    Example: rkit index knn db.h5 -o knn.h5 -k 50
    """
    from retrievalkit.search.stages import knn

    dev = resolve_device(device)
    with progress_bar("knn", None) as adv:
        out = knn(database, output, k=k, device=dev, block=block, progress=adv)
    echo_path(out)


def register(app: typer.Typer) -> None:
    import importlib

    # Other index kinds live in their own modules and add commands to ``index_app``.
    for mod in ("index_asmk",):
        try:
            importlib.import_module(f"retrievalkit.cli.{mod}").register_index(index_app)
        except ModuleNotFoundError as e:
            if e.name != f"retrievalkit.cli.{mod}":
                raise
    app.add_typer(index_app, name="index")
