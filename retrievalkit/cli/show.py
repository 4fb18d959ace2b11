"""``rkit show``: HTML report of rankings (labels, per-query AP, matches) or of copy-detection errors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrievalkit.cli.common import echo_path, handle_errors, info, progress_bar
from retrievalkit.errors import UsageError


def _is_ranks_file(path: Path) -> bool:
    import h5py

    if path.suffix.lower() == ".csv" or not h5py.is_hdf5(path):
        return False
    with h5py.File(path, "r") as f:
        kind = f.attrs.get("kind")
    kind = kind.decode() if isinstance(kind, bytes) else kind
    return kind == "rkit/ranks"


@handle_errors
def show_cmd(
    inputs: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="ranks.h5 (several: methods "
                                                 "side by side), or a copy-detection matches.csv / descriptors .h5.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML page to write; thumbnails and plots go to "
                                         "<name>_files/ beside it (reused on the next run).")],
    images: Annotated[Path | None, typer.Option(exists=True, file_okay=False, help="Ranks: the folder the image "
                                                "names are relative to.")] = None,
    gnd: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Ground truth: revisitop .json/.pkl "
                                             "for ranks; DISC21 ground_truth.csv for copy detection.")] = None,
    queries: Annotated[Path | None, typer.Option(exists=True, help="Copy detection: the query image folder. "
                                                 "Ranks with --matches: the queries' locals file.")] = None,
    database: Annotated[Path | None, typer.Option(exists=True, help="Copy detection: the reference image "
                                                  "folder. Ranks with --matches: the database locals file.")] = None,
    matches: Annotated[bool, typer.Option("--matches", help="Draw the inlier matches of each query's top results "
                                          "(recomputed from --queries/--database locals, as rkit verify).")] = False,
    top_k: Annotated[int | None, typer.Option("-k", "--top-k", help="Results shown per query (default 10; "
                                              "3 with --matches).")] = None,
    only: Annotated[str | None, typer.Option(help="Show only these queries: comma-separated names (extension "
                                             "optional) or 0-based indices.")] = None,
    sort: Annotated[str | None, typer.Option(help="Row order: ap (worst first), name, file, diff (largest AP "
                                             "difference between methods). Default: ap with --gnd (diff for "
                                             "several files), else file.")] = None,
    protocol: Annotated[str, typer.Option(help="Protocol the page opens with (easy, medium, hard); the page "
                                          "switches.")] = "medium",
    page_size: Annotated[int, typer.Option(help="Query rows per page.")] = 50,
    thumb_size: Annotated[int, typer.Option(help="Longer side of the thumbnails, pixels.")] = 192,
    examples: Annotated[int, typer.Option(help="Copy detection: false positives and missed copies listed "
                                          "(each).")] = 50,
):
    """Write an HTML report to look at results in a browser (offline, no network).

    Rankings: per query its thumbnail (query box drawn) and top-k results bordered by label (easy/hard positive,
    junk, wrong) with rank and score, per-query AP, worst first; the metrics table and precision-recall plots;
    a protocol switch. Several ranks files: side by side, which queries each wins. Copy detection: the
    highest-scoring false positives, the missed copies and the precision-recall curve.

    Example: rkit show ranks.h5 --images data/images --gnd gnd.json -o report.html
    Example: rkit show v.h5 --images data/images --matches --queries q.sift.h5 --database db.sift.h5 -o m.html
    Example: rkit show matches.csv --gnd ground_truth.csv --queries Q/ --database R/ -o cd.html
    """
    from retrievalkit.show.config import ShowConfig

    config = ShowConfig(top_k=top_k, sort=sort, protocol=protocol, page_size=page_size, thumb_size=thumb_size,
                        only=tuple(s for s in (only or "").split(",") if s.strip()), matches=matches,
                        examples=examples)
    config.check()
    if output.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"-o {output}: the report is an HTML page; name it .html")
    ranks_inputs = [_is_ranks_file(p) for p in inputs]
    if all(ranks_inputs):
        if images is None:
            raise UsageError("--images: give the folder the ranks file's image names are relative to")
        if examples != 50:
            raise UsageError("--examples applies to copy-detection reports only")
        if gnd is not None and gnd.suffix.lower() == ".csv":
            raise UsageError(f"--gnd {gnd}: a CSV is copy-detection ground truth; give the revisitop gnd.json")
        from retrievalkit.show.retrieval import build_ranks_report

        with progress_bar("show", len(config.only) or None) as adv:
            out = build_ranks_report(inputs, images, output, config, gnd_path=gnd, queries_locals=queries,
                                     database_locals=database, progress=adv)
    elif not any(ranks_inputs):
        if len(inputs) != 1:
            raise UsageError("copy detection: give one matches.csv (or descriptors .h5)")
        given = [n for n, v in (("--images", images is not None), ("--matches", matches), ("-k", top_k is not None),
                                ("--only", bool(only)), ("--sort", sort is not None),
                                ("--protocol", protocol != "medium"), ("--page-size", page_size != 50)) if v]
        if given:
            raise UsageError(f"{', '.join(given)} apply to ranks reports, not to copy detection")
        if gnd is None or queries is None or database is None:
            raise UsageError("copy detection needs --gnd ground_truth.csv, --queries Q/ and --database R/")
        from retrievalkit.show.copydetect import build_copydetect_report

        out = build_copydetect_report(inputs[0], gnd, queries, database, output, config)
    else:
        raise UsageError("give ranks files only, or one copy-detection result, not both")
    info(f"report: {out}")
    echo_path(out)


def register(app: typer.Typer) -> None:
    app.command("show")(show_cmd)
