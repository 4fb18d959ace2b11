"""``rkit whiten``: learn a PCA or learned (supervised) whitening; ``rkit whiten apply``: whiten features."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrievalkit.cli import options as opt
from retrievalkit.cli.common import default_command_group, echo_path, handle_errors, info
from retrievalkit.cli.options import command, config_from_options, default_of, refuse_inapplicable
from retrievalkit.configs.whiten import ApplyWhiteningConfig, WhitenConfig

whiten_app = typer.Typer(
    cls=default_command_group("learn"), no_args_is_help=True,
    help="Learn a whitening from a features file (rkit whiten FEATS.h5 -o whiten.h5), or apply one "
         "(rkit whiten apply FEATS.h5 --whitening whiten.h5 -o feats.w.h5). Options: rkit whiten learn --help.")


@handle_errors
def learn_cmd(
    features: opt.input_file("Features file (rkit extract) to learn from."),
    output: opt.output("Whitening file to write (.h5)."),
    method: opt.method("pca: PCA whitening of the features; learned: supervised whitening from the "
                       f"query/positive pairs of --tuples (Radenović et al.) {default_of(WhitenConfig, 'method')}.")
    = None,
    tuples: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="--method learned: tuples file "
                                                   "(sfm-mine/manifold-mine) whose pairs train it; names are matched "
                                                   "to the features'.")] = None,
    dim: opt.dim("Output dimension (keep the top components; default: all).") = None,
    shrinkage: opt.shrinkage("Shrink the covariance towards a scaled identity, in [0, 1] (needed when pairs are "
                             f"fewer than dimensions) {default_of(WhitenConfig, 'shrinkage')}.") = None,
    power: Annotated[float | None, typer.Option(help="--method pca: eigenvalue power in [0, 1] (0.5 full "
                                                f"whitening, 0 plain PCA) {default_of(WhitenConfig, 'power')}.")]
    = None,
):
    """Learn a whitening (mean m and projection P; x -> l2n(P (x - m))) and write it.

    Example: rkit whiten feats.h5 -o whiten.h5 --method learned --tuples tuples.h5 --dim 512
    """
    from retrievalkit.whiten.stage import learn_whitening

    cfg = config_from_options(WhitenConfig, method=method, dim=dim, shrinkage=shrinkage, power=power)
    if cfg.method == "pca":
        refuse_inapplicable("--method pca (it is an option of --method learned)", {"--tuples": tuples})
    else:
        refuse_inapplicable("--method learned (it is an option of --method pca)", {"--power": power})
    out = learn_whitening(features, output, cfg, tuples=tuples)
    info(f"wrote {cfg.method} whitening to {out}")
    echo_path(out)


@handle_errors
def apply_cmd(
    features: opt.input_file("Features file to whiten."),
    whitening: Annotated[Path, typer.Option("--whitening", exists=True, dir_okay=False,
                                            help="Whitening file (rkit whiten).")],
    output: opt.output("Whitened features file to write."),
    dim: opt.dim("Keep only the first DIM whitened dimensions (default: all).") = None,
):
    """Whiten every vector of a features file and L2-normalise it again.

    Example: rkit whiten apply feats.h5 --whitening whiten.h5 -o feats.w.h5
    """
    from retrievalkit.whiten.stage import apply_whitening_file

    cfg = config_from_options(ApplyWhiteningConfig, dim=dim)
    echo_path(apply_whitening_file(features, whitening, output, cfg))


def register(app: typer.Typer) -> None:
    command(whiten_app, "learn", learn_cmd)
    command(whiten_app, "apply", apply_cmd, renamed={"-w": "--whitening"})
    app.add_typer(whiten_app, name="whiten")
