"""``rkit manifold-mine``: Mining on Manifolds (CVPR 2018) — tuples from a kNN graph, no labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrievalkit.cli.common import echo_path, handle_errors, info, progress_bar, resolve_device


def register(app: typer.Typer) -> None:
    @app.command("manifold-mine")
    @handle_errors
    def manifold_mine_cmd(
        features: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                                 help="Global descriptors of the collection (feats.h5).")],
        graph: Annotated[Path, typer.Option("--graph", exists=True, dir_okay=False,
                                            help="kNN graph of the same features (rkit index knn).")],
        output: Annotated[Path, typer.Option("-o", "--output", help="Tuples file to write (tuples.h5).")],
        method: Annotated[str, typer.Option(
            help="manifold (hard positives/negatives, the paper) or euclidean (plain kNN baseline).")]
        = "manifold",
        anchors: Annotated[int, typer.Option("--anchors", help="Anchors kept (most probable graph modes).")]
        = 100,
        k_pos: Annotated[int, typer.Option(
            help="Positives: top-k on the manifold that are not top-k in descriptor space.")] = 10,
        k_neg: Annotated[int, typer.Option(
            help="Negatives: top-k in descriptor space that are not top-k on the manifold.")] = 10,
        max_pos: Annotated[int, typer.Option(help="At most this many positives per anchor (0: all).")] = 0,
        max_neg: Annotated[int, typer.Option(help="At most this many negatives per anchor (0: all).")] = 0,
        gamma: Annotated[float, typer.Option(help="Affinity exponent: similarity**gamma.")] = 3.0,
        alpha: Annotated[float, typer.Option(help="Diffusion alpha in (0, 1).")] = 0.99,
        iters: Annotated[int, typer.Option(help="Conjugate-gradient iterations.")] = 20,
        graph_k: Annotated[int | None, typer.Option(help="Use only the first k neighbours of the graph.")]
        = None,
        mutual: Annotated[bool, typer.Option(help="Keep only mutual kNN edges.")] = False,
        batch: Annotated[int, typer.Option(help="Anchors per diffusion solve.")] = 256,
        seed: Annotated[int, typer.Option(help="Random seed (euclidean negatives).")] = 0,
        device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N].")] = "auto",
    ):
        """Mine hard positives and negatives on the manifold of a collection's descriptors (Iscen et al.).

        Anchors are the modes of the random walk on the kNN graph; positives are manifold neighbours that
        are far in descriptor space, negatives descriptor neighbours that are off the manifold. Each tuple
        is (anchor, positive) with the anchor's negatives in nidx.

        Example: rkit manifold-mine db.h5 --graph knn.h5 -o tuples.h5 --anchors 50 --k-pos 10 --k-neg 10
        """
        from retrievalkit.mining.manifold import manifold_mine

        dev = resolve_device(device)
        with progress_bar("manifold-mine anchors", None) as advance:
            out = manifold_mine(features, graph, output, method=method, n_anchors=anchors, k_pos=k_pos,
                                k_neg=k_neg, max_pos=max_pos, max_neg=max_neg, gamma=gamma, alpha=alpha,
                                iters=iters, mutual=mutual, graph_k=graph_k, batch=batch, device=dev, seed=seed,
                                progress=advance)
        from retrievalkit.io.tuples import read_tuples

        t = read_tuples(out)
        width = t.nidx.shape[1] if t.nidx is not None else 0
        info(f"manifold-mine: {len(t.config.get('anchors', []))} anchors, {len(t)} (anchor, positive) tuples, "
             f"up to {width} negatives per tuple")
        echo_path(out)
