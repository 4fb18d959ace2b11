"""``rkit manifold-mine``: Mining on Manifolds (CVPR 2018) — tuples from a kNN graph, no labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrievalkit.cli import options as opt
from retrievalkit.cli.common import echo_path, handle_errors, info, progress_bar, resolve_device
from retrievalkit.cli.options import command, config_from_options, default_of, refuse_inapplicable
from retrievalkit.configs.mining import ManifoldMineConfig

_M = ManifoldMineConfig


def _d(field: str) -> str:
    return default_of(_M, field)


@handle_errors
def manifold_mine_cmd(
    features: opt.input_file("Global descriptors of the collection (feats.h5)."),
    graph: Annotated[Path, typer.Option("--graph", exists=True, dir_okay=False,
                                        help="kNN graph of the same features (rkit index knn).")],
    output: opt.output("Tuples file to write (tuples.h5)."),
    method: opt.method(f"manifold (hard positives/negatives, the paper) or euclidean (plain kNN baseline) "
                       f"{_d('method')}.") = None,
    anchors: Annotated[int | None, typer.Option(help=f"Anchors kept (most probable graph modes) {_d('anchors')}.")]
    = None,
    k_pos: Annotated[int | None, typer.Option(
        help=f"Positives: top-k on the manifold that are not top-k in descriptor space {_d('k_pos')}.")] = None,
    k_neg: Annotated[int | None, typer.Option(
        help=f"Negatives: top-k in descriptor space that are not top-k on the manifold {_d('k_neg')}.")] = None,
    max_pos: Annotated[int | None, typer.Option(help=f"At most this many positives per anchor (0: all) "
                                                f"{_d('max_pos')}.")] = None,
    max_neg: Annotated[int | None, typer.Option(help=f"At most this many negatives per anchor (0: all) "
                                                f"{_d('max_neg')}.")] = None,
    gamma: Annotated[float | None, typer.Option(help=f"Affinity exponent: similarity**gamma {_d('gamma')}.")]
    = None,
    alpha: Annotated[float | None, typer.Option(help=f"Diffusion alpha in (0, 1) {_d('alpha')}.")] = None,
    iters: opt.iters(f"Conjugate-gradient iterations {_d('iters')}.") = None,
    graph_k: opt.graph_k("Use only the first k neighbours of the graph (default: all).") = None,
    mutual: opt.mutual(f"Keep only mutual kNN edges {_d('mutual')}, as rkit diffuse.") = None,
    block_size: opt.block_size(f"Anchors per diffusion solve {_d('block_size')}.") = None,
    seed: opt.seed(f"Random seed (euclidean negatives) {_d('seed')}.") = None,
    device: opt.Device = None,
):
    """Mine hard positives and negatives on the manifold of a collection's descriptors (Iscen et al.).

    Anchors are the modes of the random walk on the kNN graph; positives are manifold neighbours that
    are far in descriptor space, negatives descriptor neighbours that are off the manifold. Each tuple
    is (anchor, positive) with the anchor's negatives in nidx.

    Example: rkit manifold-mine db.h5 --graph knn.h5 -o tuples.h5 --anchors 50 --k-pos 10 --k-neg 10
    """
    from retrievalkit.mining.manifold import manifold_mine

    cfg = config_from_options(ManifoldMineConfig, method=method, anchors=anchors, k_pos=k_pos, k_neg=k_neg,
                              max_pos=max_pos, max_neg=max_neg, gamma=gamma, alpha=alpha, iters=iters,
                              graph_k=graph_k, mutual=mutual, block_size=block_size, seed=seed)
    if cfg.method == "manifold":
        refuse_inapplicable("--method manifold (it is an option of --method euclidean)", {"--seed": seed})
    dev = resolve_device(device)
    with progress_bar("manifold-mine anchors", None) as advance:
        out = manifold_mine(features, graph, output, cfg, device=dev, progress=advance)
    from retrievalkit.io.tuples import read_tuples

    t = read_tuples(out)
    width = t.nidx.shape[1] if t.nidx is not None else 0
    info(f"manifold-mine: {len(t.config.get('anchors', []))} anchors, {len(t)} (anchor, positive) tuples, "
         f"up to {width} negatives per tuple")
    echo_path(out)


def register(app: typer.Typer) -> None:
    command(app, "manifold-mine", manifold_mine_cmd, renamed={"--batch": "--block-size"})
