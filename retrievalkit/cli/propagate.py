"""``rkit propagate``: label propagation over the kNN graph (a few labelled images -> a class for every image)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrievalkit.cli import options as opt
from retrievalkit.cli.common import echo_path, handle_errors, resolve_device
from retrievalkit.cli.options import command, config_from_options, default_of
from retrievalkit.configs.diffusion import PropagationConfig

_P = PropagationConfig


def _d(field: str) -> str:
    return default_of(_P, field)


@handle_errors
def propagate_cmd(
    features: opt.input_file("Features of the whole collection, labelled and unlabelled (feats.h5, one vector per "
                             "image)."),
    labels: Annotated[Path, typer.Option("--labels", exists=True, dir_okay=False,
                                         help="CSV name,label of the labelled images.")],
    output: opt.output("Predictions CSV to write (name,label,confidence,weight)."),
    graph: opt.graph("kNN graph of the features (rkit index knn); its first --graph-k columns are used. Default: "
                     "built here.") = None,
    tuples: Annotated[Path | None, typer.Option(dir_okay=False,
                                                   help="Also write pseudo-labelled training tuples for rkit "
                                                        "train (clusters = classes, per-tuple weights).")] = None,
    graph_k: opt.graph_k("Graph neighbours per image. Default: 1 percent of the images within [5, 50].") = None,
    mutual: opt.mutual(f"Keep mutual neighbours only {_d('mutual')}.") = None,
    gamma: Annotated[float | None, typer.Option(help=f"Similarity exponent of the graph weights, > 0 "
                                                f"{_d('gamma')}.")] = None,
    alpha: Annotated[float | None, typer.Option(help=f"Diffusion alpha in (0, 1) {_d('alpha')}.")] = None,
    iters: opt.iters(f"Maximum CG iterations {_d('iters')}.") = None,
    tol: Annotated[float | None, typer.Option(help=f"CG relative residual to stop at {_d('tol')}.")] = None,
    device: opt.Device = None,
):
    """Give every image a class from a few labelled ones: diffusion of the labels over the kNN graph.

    Solves (I - alpha S) Z = Y for all classes at once (Iscen et al., CVPR 2019); each image gets
    the class of its largest score, a confidence (its share of the score) and a weight (1 - entropy / log C).

    Example: rkit propagate feats.h5 --labels labels.csv -o predictions.csv --tuples pseudo.h5
    """
    from retrievalkit.diffusion.propagation_stage import propagate

    cfg = config_from_options(PropagationConfig, graph_k=graph_k, mutual=mutual, gamma=gamma, alpha=alpha,
                              iters=iters, tol=tol)
    out = propagate(features, labels, output, cfg, graph=graph, tuples=tuples, device=resolve_device(device))
    echo_path(out)


def register(app: typer.Typer) -> None:
    command(app, "propagate", propagate_cmd)
