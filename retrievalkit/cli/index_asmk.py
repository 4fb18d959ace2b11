"""``rkit index asmk`` and ``rkit index search-asmk``: ASMK* over local features."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrievalkit.cli import options as opt
from retrievalkit.cli.common import echo_path, handle_errors, info, progress_bar
from retrievalkit.cli.options import command, config_from_options, default_of, refuse_inapplicable
from retrievalkit.configs.search import AsmkConfig, AsmkSearchConfig, FuseConfig
from retrievalkit.errors import UsageError


@handle_errors
def asmk_cmd(
    database: opt.input_file("Database locals (rkit extract --local)."),
    output: opt.output("ASMK index file to write (.h5)."),
    codebook_size: Annotated[int | None, typer.Option(help="Visual words (k-means). Default: a power of two "
                                                         "near descriptors/256, 256..65536.")] = None,
    codebook: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Reuse the codebook of "
                                                     "this ASMK index (needed with --shard).")] = None,
    training: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Locals to train the "
                                                     "codebook on (default: the database).")] = None,
    ma: Annotated[int | None, typer.Option(help="Multiple assignment: words per database descriptor "
                                           f"{default_of(AsmkConfig, 'ma')}.")] = None,
    block_size: opt.block_size(f"Database images added at a time (bounds memory) "
                               f"{default_of(AsmkConfig, 'block_size')}.") = None,
    shard: opt.shard("Index only block I of N (I/N); search all shards together.") = None,
    iters: opt.iters(f"k-means iterations {default_of(AsmkConfig, 'iters')}.") = None,
    seed: opt.seed(f"k-means seed (of the first codebook) {default_of(AsmkConfig, 'seed')}.") = None,
    codebooks: Annotated[int | None, typer.Option(help="Codebooks to train (seeds --seed, --seed + 1, ...) and "
                                                  "index in the one file; search-asmk averages their scores "
                                                  f"{default_of(AsmkConfig, 'codebooks')}.")] = None,
):
    """Build an ASMK* index (k-means codebook + inverted file of binarised residuals) of database locals.

    Example: rkit index asmk db.loc.h5 -o asmk.h5 --codebook-size 8192
    Example: rkit index asmk db.loc.h5 -o asmk.h5 --codebooks 4
    """
    from retrievalkit.images.discover import parse_shard
    from retrievalkit.io.locals import count_locals
    from retrievalkit.search.asmk import build_asmk

    cfg = config_from_options(AsmkConfig, codebook_size=codebook_size, ma=ma, block_size=block_size, iters=iters,
                              seed=seed, codebooks=codebooks)
    if codebook is not None:
        refuse_inapplicable("index asmk --codebook (its codebooks are reused, not trained)", {
            "--codebook-size": codebook_size, "--training": training, "--iters": iters, "--seed": seed,
            "--codebooks": codebooks})
    sh = parse_shard(shard)
    n, _, _ = count_locals(database)
    with progress_bar("asmk", n) as adv:
        out = build_asmk(database, output, cfg, codebook=codebook, train=training, shard=sh, progress=adv)
    echo_path(out)


@handle_errors
def search_asmk_cmd(
    index: Annotated[list[Path] | None, typer.Argument(
        exists=True, dir_okay=False, metavar="INDEX", help="Older form of --database.")] = None,
    database: Annotated[list[Path] | None, typer.Option(
        "--database", exists=True, dir_okay=False, help="ASMK index file (rkit index asmk); repeat it for several "
                                                        "shards of one index, searched together.")] = None,
    queries: opt.queries("Query locals (extracted like the database's).") = ...,
    output: opt.output("Ranks file to write.") = ...,
    top_k: opt.top_k(f"Results kept per query {default_of(AsmkSearchConfig, 'top_k')}.") = None,
    ma: Annotated[int | None, typer.Option(help="Multiple assignment: words per query descriptor "
                                           f"{default_of(AsmkSearchConfig, 'ma')}.")] = None,
    alpha: Annotated[float | None, typer.Option(help="Selectivity exponent α, > 0 "
                                                f"{default_of(AsmkSearchConfig, 'alpha')}.")] = None,
    tau: Annotated[float | None, typer.Option(help="Selectivity threshold τ on the word similarity, in [-1, 1] "
                                              f"{default_of(AsmkSearchConfig, 'tau')}.")] = None,
):
    """Rank the database of an ASMK* index for each query image's local features (an index of several
    codebooks, --codebooks N: the mean of their scores).

    Example: rkit index search-asmk --database asmk.h5 --queries q.loc.h5 -o ranks.h5 -k 100
    """
    from retrievalkit.io.locals import count_locals, read_locals
    from retrievalkit.search.asmk import search_asmk_files

    if database and index:
        raise UsageError("give the index once: --database FILE (repeated for shards) or positionally, not both")
    indexes = list(database or index or [])
    if not indexes:
        raise UsageError("missing --database INDEX.h5 (the ASMK index from rkit index asmk)")
    cfg = config_from_options(AsmkSearchConfig, top_k=top_k, ma=ma, alpha=alpha, tau=tau)
    nq, _, _ = count_locals(queries)
    with progress_bar("search-asmk", nq) as adv:
        out = search_asmk_files(indexes, queries, output, cfg, progress=adv)
    empty = int((read_locals(queries).counts() == 0).sum())
    if empty:
        info(f"[yellow]{empty} query image(s) have no local features[/]: their result lists are empty")
    echo_path(out)


@handle_errors
def fuse_cmd(
    inputs: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False,
                                                 help="Two or more ranks files of the same queries.")],
    output: opt.output("Fused ranks file to write."),
    top_k: opt.top_k(f"Results kept per query {default_of(FuseConfig, 'top_k')}.") = None,
):
    """Fuse rankings of several methods (global, deep-local ASMK, SIFT ASMK) by summing per-query z-scores.

    Give each input with -k about the database size. Fuse only methods of similar quality: a weak one drags
    the sum down.

    Example: rkit index fuse global.h5 asmk-deep.h5 asmk-sift.h5 -o fused.h5 -k 100
    """
    from retrievalkit.search.fusion import fuse_ranks_files

    cfg = config_from_options(FuseConfig, top_k=top_k)
    echo_path(fuse_ranks_files(inputs, output, cfg))


def register_index(index_app: typer.Typer) -> None:
    command(index_app, "fuse", fuse_cmd)
    command(index_app, "asmk", asmk_cmd, renamed={"--chunk": "--block-size", "--niter": "--iters",
                                                  "--train": "--training"})
    command(index_app, "search-asmk", search_asmk_cmd,
            renamed={"-q": "--queries (-q is rkit's --quiet, given before the command)"})
