"""``rkit index build`` and ``rkit index merge``: compressed, sharded faiss indexes; and the ``--index`` paths of
``rkit index search`` / ``rkit index knn`` (called from ``cli/index.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrievalkit.cli.common import echo_path, handle_errors, info, progress_bar


def _log(msg: str) -> None:
    info(msg)


@handle_errors
def build_cmd(
    features: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Database features (feats.h5; "
                                             "float16 files accepted).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Index file to write (rkit/faiss-index).")],
    factory: Annotated[str | None, typer.Option(help="faiss factory string, e.g. Flat, IVF4096,Flat, IVF4096,PQ32, "
                                                "OPQ32,IVF4096,PQ32, HNSW32. Default: Flat below 50k vectors, "
                                                "IVF{4√N},Flat below 1M, IVF{4√N},PQ{m} above.")] = None,
    train_size: Annotated[int | None, typer.Option(help="Training vectors sampled from the file. Default: "
                                                   "max(100k, 50·nlist), at most N.")] = None,
    block_size: Annotated[int, typer.Option(help="Rows read from the features file at a time (bounds "
                                            "memory).")] = 65536,
    seed: Annotated[int, typer.Option(help="Seed of the training sample and k-means.")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda (all GPUs) or cuda:N: where faiss-gpu trains and "
                                        "adds.")] = "cpu",
    train_only: Annotated[bool, typer.Option("--train-only", help="Write the trained empty index (start of a "
                                             "sharded build).")] = False,
    trained: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Trained empty index to add "
                                                 "to (from --train-only).")] = None,
    shard: Annotated[str | None, typer.Option(help="Add only block I of N of the rows (I/N); combine the parts "
                                              "with rkit index merge, or search them together.")] = None,
):
    """Build a faiss index of a features file, streamed in blocks; inner product on the unit vectors.

    Example: rkit index build db.h5 -o db.index.h5 --factory IVF1024,PQ32
    Sharded: rkit index build db.h5 --train-only -o trained.h5, then for each I:
    rkit index build db.h5 --trained trained.h5 --shard I/8 -o part.I.h5, then rkit index merge part.*.h5 -o db.index.h5
    """
    from retrievalkit.search.index_stages import IndexBuildConfig, build_index

    sh = None
    if shard is not None:  # (imported only here: the images package pulls in torch)
        from retrievalkit.images.discover import parse_shard

        sh = parse_shard(shard)
    cfg = IndexBuildConfig(factory=factory, train_size=train_size, block_size=block_size, seed=seed,
                           device=device.lower())
    with progress_bar("add", None) as adv:
        out = build_index(features, output, cfg, trained=trained, shard=sh, train_only=train_only, progress=adv,
                          log=_log)
    echo_path(out)


@handle_errors
def merge_cmd(
    parts: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="Index parts (rkit index build "
                                                "--shard I/N), any order.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Merged index file to write.")],
    on_disk: Annotated[bool, typer.Option("--on-disk", help="IVF only: write the inverted lists to "
                                          "OUTPUT.ivfdata beside the index, memory-mapped at search time "
                                          "(indexes larger than RAM).")] = False,
):
    """Combine the parts of a sharded index build into one index (checked for gaps, overlap and training).

    Example: rkit index merge part.1.h5 part.2.h5 -o db.index.h5 [--on-disk]
    """
    from retrievalkit.search.index_stages import IndexMergeConfig, merge_index

    echo_path(merge_index(parts, output, IndexMergeConfig(on_disk=on_disk), log=_log))


def search_with_index(index: list[Path], queries: Path | None, database: Path | None, output: Path, k: int,
                      device: str, block_size: int, shortlist: int | None, nprobe: int | None, ef: int | None,
                      gpu_shard: bool) -> None:
    """``rkit index search --index ...``: search built index files (several parts merged exactly)."""
    from retrievalkit.errors import UsageError
    from retrievalkit.search.index_stages import IndexSearchConfig, search_index

    if queries is None:
        raise UsageError("give the query features (rkit index search --index INDEX q.h5 -o ranks.h5)")
    cfg = IndexSearchConfig(k=k, nprobe=nprobe, ef=ef, shortlist=shortlist, block_size=block_size,
                            device=device.lower(), gpu_shard=gpu_shard)
    with progress_bar("search", None) as adv:
        out = search_index(index, queries, output, cfg, database=database, progress=adv, log=_log)
    echo_path(out)


def knn_with_index(database: Path, output: Path, k: int, device: str, block_size: int, index: list[Path] | None,
                   factory: str | None, train_size: int | None, shortlist: int | None, nprobe: int | None,
                   ef: int | None, recall_sample: int) -> None:
    """``rkit index knn --index/--factory``: the approximate kNN graph, with its measured recall."""
    from retrievalkit.search.index_stages import IndexBuildConfig, IndexSearchConfig, knn_index

    cfg = IndexSearchConfig(k=k, nprobe=nprobe, ef=ef, shortlist=shortlist, block_size=block_size,
                            device=device.lower())
    build = None
    if factory is not None:
        build = IndexBuildConfig(factory=factory, train_size=train_size, device=device.lower())
    elif train_size is not None:
        from retrievalkit.errors import UsageError

        raise UsageError("--train-size applies with --factory (an index built here)")
    with progress_bar("knn", None) as adv:
        out = knn_index(database, output, cfg, index=index, build=build, recall_sample=recall_sample,
                        progress=adv, log=_log)
    echo_path(out)


def register_index(index_app: typer.Typer) -> None:
    index_app.command("build")(build_cmd)
    index_app.command("merge")(merge_cmd)
