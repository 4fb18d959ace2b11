"""``rkit whiten``: learn a PCA or learned (supervised) whitening; ``rkit whiten apply``: whiten features."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrievalkit.cli.common import default_command_group, echo_path, handle_errors, info

whiten_app = typer.Typer(
    cls=default_command_group("learn"), no_args_is_help=True,
    help="Learn a whitening from a features file (rkit whiten FEATS.h5 -o whiten.h5), or apply one "
         "(rkit whiten apply FEATS.h5 --whitening whiten.h5 -o feats.w.h5). Options: rkit whiten learn --help.")


@whiten_app.command("learn")
@handle_errors
def learn_cmd(
    features: Annotated[Path, typer.Argument(help="Features file (rkit extract) to learn from.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Whitening file to write (.h5).")],
    method: Annotated[str, typer.Option(help="pca: PCA whitening of the features; learned: supervised whitening "
                                        "from the query/positive pairs of --tuples (Radenović et al.).")] = "pca",
    tuples: Annotated[Path | None, typer.Option(help="Tuples file (sfm-mine/manifold-mine) whose pairs train "
                                                   "--method learned; names are matched to the features'.")] = None,
    dim: Annotated[int | None, typer.Option(help="Output dimension (keep the top components).")] = None,
    shrinkage: Annotated[float, typer.Option(help="Shrink the covariance towards a scaled identity, in [0, 1] "
                                             "(needed when pairs are fewer than dimensions).")] = 0.0,
    power: Annotated[float, typer.Option(help="--method pca: eigenvalue power (0.5 full whitening, 0 plain "
                                         "PCA).")] = 0.5,
):
    """Learn a whitening (mean m and projection P; x -> l2n(P (x - m))) and write it.

    Example: rkit whiten feats.h5 -o whiten.h5 --method learned --tuples tuples.h5 --dim 512
    """
    from retrievalkit.whiten.stage import learn_whitening

    out = learn_whitening(features, output, method=method, tuples=tuples, dim=dim, shrinkage=shrinkage, power=power)
    info(f"wrote {method} whitening to {out}")
    echo_path(out)


@whiten_app.command("apply")
@handle_errors
def apply_cmd(
    features: Annotated[Path, typer.Argument(help="Features file to whiten.")],
    whitening: Annotated[Path, typer.Option("--whitening", "-w", help="Whitening file (rkit whiten).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Whitened features file to write.")],
    dim: Annotated[int | None, typer.Option(help="Keep only the first DIM whitened dimensions.")] = None,
):
    """Whiten every vector of a features file and L2-normalise it again.

    Example: rkit whiten apply feats.h5 --whitening whiten.h5 -o feats.w.h5
    """
    from retrievalkit.whiten.stage import apply_whitening_file

    echo_path(apply_whitening_file(features, whitening, output, dim=dim))


def register(app: typer.Typer) -> None:
    app.add_typer(whiten_app, name="whiten")
