"""``rkit propagate``: label propagation over the kNN graph (a few labelled images -> a class for every image)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrievalkit.cli.common import echo_path, handle_errors, resolve_device


@handle_errors
def propagate_cmd(
    features: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                             help="Features of the whole collection, labelled and unlabelled "
                                                  "(feats.h5, one vector per image).")],
    labels: Annotated[Path, typer.Option("--labels", exists=True, dir_okay=False,
                                         help="CSV name,label of the labelled images.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Predictions CSV to write "
                                                                "(name,label,confidence,weight).")],
    graph: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                                  help="kNN graph of the features (rkit index knn); its first "
                                                       "--graph-k columns are used. Default: built here.")] = None,
    tuples: Annotated[Path | None, typer.Option(dir_okay=False,
                                                   help="Also write pseudo-labelled training tuples for rkit "
                                                        "train (clusters = classes, per-tuple weights).")] = None,
    graph_k: Annotated[int | None, typer.Option(help="Graph neighbours per image. Default: 1 percent of the "
                                                        "images within [5, 50].")] = None,
    mutual: Annotated[bool, typer.Option("--mutual/--no-mutual", help="Keep mutual neighbours only.")] = True,
    gamma: Annotated[float, typer.Option(help="Similarity exponent of the graph weights.")] = 3.0,
    alpha: Annotated[float, typer.Option(help="Diffusion alpha in (0, 1).")] = 0.99,
    iters: Annotated[int, typer.Option(help="Maximum CG iterations.")] = 20,
    tol: Annotated[float, typer.Option(help="CG relative residual to stop at.")] = 1e-6,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N].")] = "auto",
):
    """Give every image a class from a few labelled ones: diffusion of the labels over the kNN graph.

    Solves (I - alpha S) Z = Y for all classes at once (Iscen et al., CVPR 2019); each image gets
    the class of its largest score, a confidence (its share of the score) and a weight (1 - entropy / log C).

    Example: rkit propagate feats.h5 --labels labels.csv -o predictions.csv --tuples pseudo.h5
    """
    from retrievalkit.diffusion.propagation import PropagationConfig
    from retrievalkit.diffusion.propagation_stage import propagate

    cfg = PropagationConfig(graph_k=graph_k, mutual=mutual, gamma=gamma, alpha=alpha, iters=iters, tol=tol)
    out = propagate(features, labels, output, graph=graph, config=cfg, tuples=tuples, device=resolve_device(device))
    echo_path(out)


def register(app: typer.Typer) -> None:
    app.command("propagate")(propagate_cmd)
