"""``rkit evaluate``: retrieval metrics (revisitop) of a ranks file, or DISC21 µAP of copy-detection output."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from retrievalkit.cli.common import err_console, handle_errors, state
from retrievalkit.cli.options import command
from retrievalkit.errors import UsageError


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def print_retrieval_table(m: dict, title: str = "") -> None:
    t = Table(title=title or None, show_edge=False)
    t.add_column("protocol")
    t.add_column("mAP", justify="right")
    ks = list(next(iter(m["mp"].values())).keys()) if m["mp"] else []
    for k in ks:
        t.add_column(f"mP@{k}", justify="right")
    for k in ks:
        t.add_column(f"R@{k}", justify="right")
    for proto in m["map"]:
        t.add_row(proto, _fmt(m["map"][proto]), *[_fmt(m["mp"][proto][k]) for k in ks],
                  *[_fmt(m["recall"][proto][k]) for k in ks])
    err_console.print(t)
    err_console.print(f"{m['queries']} queries")


@handle_errors
def evaluate_cmd(
    result: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                           help="ranks.h5, matches.csv, descriptors .h5 or predictions.csv.")],
    gnd: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                                help="revisitop ground truth (.json/.pkl).")] = None,
    gt: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                               help="DISC21 ground-truth CSV (query_id,reference_id).")] = None,
    labels: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                                   help="True classes (CSV name,label; empty label: no class) of "
                                                        "the images to score in a predictions CSV "
                                                        "(rkit propagate): accuracy and GAP.")] = None,
    plot: Annotated[Path | None, typer.Option(dir_okay=False, help="Also draw the precision-recall curves (and "
                                              "the per-query AP histogram) into this PNG.")] = None,
):
    """Score a result: revisitop mAP Easy/Medium/Hard, mP@k, recall@k; DISC21 µAP and recall@P90; or recognition
    accuracy and GAP of a predictions CSV.

    Prints one JSON object on stdout (values in percent for retrieval, µAP in [0, 1]) and a table on stderr.

    Example: rkit evaluate ranks.h5 --gnd gnd.json --plot pr.png
    """
    if plot is not None and plot.suffix.lower() != ".png":
        raise UsageError(f"--plot {plot}: the plot is a PNG image; name it .png")
    if sum(v is not None for v in (gnd, gt, labels)) != 1:
        raise UsageError("give exactly one of --gnd (ranks file), --gt (copy-detection CSV / descriptors) or "
                         "--labels (predictions CSV)")
    if labels is not None:
        if plot is not None:
            raise UsageError("--plot draws retrieval or copy-detection curves; it does not apply to --labels")
        from retrievalkit.evaluate.recognition import evaluate_predictions

        metrics = evaluate_predictions(result, labels)
        if not state.quiet:
            err_console.print(f"accuracy {_fmt(metrics['accuracy'])} %   GAP {_fmt(metrics['gap'])} %   "
                              f"{metrics['images']} images, {metrics['with_class']} with a class")
        sys.stdout.write(json.dumps(metrics) + "\n")
        return
    if gnd is not None and result.suffix.lower() == ".csv":
        raise UsageError(f"{result}: a CSV is a copy-detection result; score it with --gt ground_truth.csv "
                         "(--gnd scores a ranks file)")
    if gnd is not None:
        from retrievalkit.evaluate.stage import evaluate_ranks_file

        metrics = evaluate_ranks_file(result, gnd)
        if plot is not None:
            from retrievalkit.show.plots import plot_ranks_file

            plot_ranks_file(result, gnd, plot)
        if not state.quiet:
            print_retrieval_table(metrics, title=str(result))
    else:
        from retrievalkit.evaluate.copydetect_stage import evaluate_copy_detection

        metrics = evaluate_copy_detection(result, gt)
        if plot is not None:
            from retrievalkit.show.plots import plot_copy_detection_file

            plot_copy_detection_file(result, gt, plot)
        if not state.quiet:
            err_console.print(f"µAP {metrics['uap']:.4f}   recall@P90 {metrics['recall_at_p90']:.4f}   "
                              f"{metrics['queries']} queries, {metrics['positives']} positives")
    sys.stdout.write(json.dumps(metrics) + "\n")


def register(app: typer.Typer) -> None:
    command(app, "evaluate", evaluate_cmd)
