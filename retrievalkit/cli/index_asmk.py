"""``rkit index asmk`` and ``rkit index search-asmk``: ASMK* over local features."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrievalkit.cli.common import echo_path, handle_errors, info, progress_bar


@handle_errors
def asmk_cmd(
    database: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Database locals (rkit extract "
                                             "--local).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="ASMK index file to write (.h5).")],
    codebook_size: Annotated[int | None, typer.Option(help="Visual words (k-means). Default: a power of two "
                                                         "near descriptors/256, 256..65536.")] = None,
    codebook: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Reuse the codebook of "
                                                     "this ASMK index (needed with --shard).")] = None,
    train: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Locals to train the "
                                                  "codebook on (default: the database).")] = None,
    ma: Annotated[int, typer.Option(help="Multiple assignment: words per database descriptor.")] = 1,
    chunk: Annotated[int, typer.Option(help="Database images added at a time (bounds memory).")] = 500,
    shard: Annotated[str | None, typer.Option(help="Index only block I of N (I/N); search all shards "
                                                 "together.")] = None,
    niter: Annotated[int, typer.Option(help="k-means iterations.")] = 10,
    seed: Annotated[int, typer.Option(help="k-means seed.")] = 0,
):
    """Build an ASMK* index (k-means codebook + inverted file of binarised residuals) of database locals.

    Example: rkit index asmk db.loc.h5 -o asmk.h5 --codebook-size 8192
    """
    from retrievalkit.images.discover import parse_shard
    from retrievalkit.io.locals import count_locals
    from retrievalkit.search.asmk import build_asmk

    sh = parse_shard(shard)
    n, _, _ = count_locals(database)
    with progress_bar("asmk", n) as adv:
        out = build_asmk(database, output, codebook_size=codebook_size, codebook=codebook, train=train, ma=ma,
                         chunk=chunk, shard=sh, niter=niter, seed=seed, progress=adv)
    echo_path(out)


@handle_errors
def search_asmk_cmd(
    index: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="ASMK index file(s); several "
                                                "shards of one index are searched together.")],
    queries: Annotated[Path, typer.Option("--queries", "-q", exists=True, dir_okay=False,
                                          help="Query locals (extracted like the database's).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Ranks file to write.")],
    k: Annotated[int, typer.Option("-k", help="Results kept per query.")] = 100,
    ma: Annotated[int, typer.Option(help="Multiple assignment: words per query descriptor.")] = 5,
    alpha: Annotated[float, typer.Option(help="Selectivity exponent α.")] = 3.0,
    tau: Annotated[float, typer.Option(help="Selectivity threshold τ on the word similarity in [-1, 1].")] = 0.0,
):
    """Rank the database of an ASMK* index for each query image's local features.

    Example: rkit index search-asmk asmk.h5 -q q.loc.h5 -o ranks.h5 -k 100
    """
    from retrievalkit.io.locals import count_locals, read_locals
    from retrievalkit.search.asmk import search_asmk_files

    nq, _, _ = count_locals(queries)
    with progress_bar("search-asmk", nq) as adv:
        out = search_asmk_files(index, queries, output, k=k, ma=ma, alpha=alpha, tau=tau, progress=adv)
    empty = int((read_locals(queries).counts() == 0).sum())
    if empty:
        info(f"[yellow]{empty} query image(s) have no local features[/]: their result lists are empty")
    echo_path(out)


@handle_errors
def fuse_cmd(
    inputs: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False,
                                                 help="Two or more ranks files of the same queries.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Fused ranks file to write.")],
    k: Annotated[int, typer.Option("-k", help="Results kept per query.")] = 100,
):
    """Fuse rankings of several methods (global, deep-local ASMK, SIFT ASMK) by summing per-query z-scores.

    Give each input with -k about the database size. Fuse only methods of similar quality: a weak one drags
    the sum down.

    Example: rkit index fuse global.h5 asmk-deep.h5 asmk-sift.h5 -o fused.h5 -k 100
    """
    from retrievalkit.search.fusion import fuse_ranks_files

    echo_path(fuse_ranks_files(inputs, output, k=k))


def register_index(index_app: typer.Typer) -> None:
    index_app.command("fuse")(fuse_cmd)
    index_app.command("asmk")(asmk_cmd)
    index_app.command("search-asmk")(search_asmk_cmd)
