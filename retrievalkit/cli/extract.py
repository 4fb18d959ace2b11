"""``rkit extract``: global descriptors of a folder of images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrievalkit.cli.common import (
    echo_path,
    err_console,
    handle_errors,
    info,
    parse_floats,
    progress_bar,
    resolve_device,
)


def _read_once(pipe: Path) -> Path:
    """A list given as a pipe (``--list <(grep day names.txt)``) can be read only once, but extraction reads
    the list more than once: keep its text in a temporary file for the run."""
    import atexit
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix="rkit-list-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(pipe.read_text(encoding="utf-8"))
    atexit.register(lambda: Path(tmp).unlink(missing_ok=True))
    return Path(tmp)


@handle_errors
def extract_cmd(
    images: Annotated[Path, typer.Argument(help="Folder of images (searched recursively); names are relative to it.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Features file to write (.h5).")],
    preset: Annotated[str | None, typer.Option(help="Named settings (gem-lite0-512, gem-lite0-1024-ms, "
                                               "gem-r101-1024, ...); options you give win.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Backbone name (efficientnet-lite0, "
                                              "resnet50, ...) or a model file (rkit train output, cirtorch or "
                                              "torchvision checkpoint). Default efficientnet-lite0.")] = None,
    weights: Annotated[Path | None, typer.Option(help="Weights file for the backbone (torchvision/cirtorch).")]
    = None,
    pooling: Annotated[str | None, typer.Option(help="mac, spoc, gem or rmac (default: the model's, gem).")]
    = None,
    p: Annotated[float | None, typer.Option(help="GeM power (default: the model's, 3).")] = None,
    whitening: Annotated[Path | None, typer.Option(help="Whitening file (rkit whiten) applied in the network.")]
    = None,
    size: Annotated[int | None, typer.Option(help="Longer image side in pixels (0: original size; default 512). "
                                             "Never upscales.")] = None,
    scales: Annotated[str | None, typer.Option(help="Comma-separated scales, e.g. 1,0.7071,0.5 (combined by GeM; "
                                               "default 1).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N].")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Images per forward pass (same-sized images are batched).")] = 1,
    workers: Annotated[int, typer.Option(help="Decoding worker processes.")] = 2,
    list_file: Annotated[Path | None, typer.Option(
        "--list", help="Text file of image names to take, one per line, relative to the folder (extension "
                       "optional).")] = None,
    gnd: Annotated[Path | None, typer.Option(help="revisitop ground truth (.json/.pkl): take names from it.")]
    = None,
    split: Annotated[str | None, typer.Option(help="With --gnd: database or queries.")] = None,
    no_boxes: Annotated[bool, typer.Option("--no-boxes", help="With --gnd: ignore query boxes (bbx).")] = False,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run from its partial output.")] = False,
    shard: Annotated[str | None, typer.Option(help="Process only block I of N (I/N); join with rkit merge.")]
    = None,
    half: Annotated[bool, typer.Option(help="Store vectors as float16.")] = False,
    upscale: Annotated[bool, typer.Option(help="Also enlarge images smaller than --size.")] = False,
    regions: Annotated[bool, typer.Option(help="Store R-MAC region vectors (several per image) for regional "
                                          "diffusion.")] = False,
    local: Annotated[bool, typer.Option("--local", help="Extract local features (a locals file) instead: "
                                        "see --local-method.")] = False,
    local_method: Annotated[str, typer.Option(help="With --local: deep (strongest CNN activations, HOW) or sift "
                                              "(RootSIFT).")] = "deep",
    max_features: Annotated[int, typer.Option(help="With --local: local features kept per image.")] = 1000,
    local_scales: Annotated[str | None, typer.Option(help="With --local deep: comma-separated pyramid scales "
                                                        "(default 1,0.707,0.5,0.353; HOW: 2,1.414,...,0.25).")] = None,
    local_layer: Annotated[str, typer.Option(help="With --local deep: s16 (efficientnet-lite0's stride-16 "
                                             "expansion layer), head (the model's output map) or auto (s16 "
                                             "where the backbone has it).")] = "auto",
    pca: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="With --local deep: reuse the "
                                                "PCA-whitening of this (database) locals file; default: learn "
                                                "one on this run's images.")] = None,
    pca_dim: Annotated[int, typer.Option(help="With --local deep: PCA-whitened dimension (0: no PCA).")] = 128,
):
    """Extract one global descriptor per image (CNN backbone + MAC/SPoC/GeM/R-MAC pooling, multi-scale), or
    with --local a variable number of local features per image (deep activations or RootSIFT).

    Example: rkit extract photos/ -o feats.h5 --scales 1,0.7071,0.5
    Example: rkit extract photos/ --preset gem-r101-1024 --weights retrievalSfM120k-gem-r101.pth -o feats.h5
    Example: rkit extract photos/ --local --local-method sift --size 1024 -o db.loc.h5
    Example: torchrun --nproc_per_node 4 -m retrievalkit extract photos/ -o feats.h5 --device cuda
    """
    from retrievalkit.extract.global_desc import extract_global
    from retrievalkit.extract.inputs import resolve_inputs
    from retrievalkit.extract.presets import resolve_settings
    from retrievalkit.images.discover import parse_shard, select_shard

    if list_file is not None and list_file.exists() and not list_file.is_file():
        list_file = _read_once(list_file)

    cfg = resolve_settings(preset, model=model, pooling=pooling, size=size, scales=parse_floats(scales, "--scales"))
    model, pooling, size, sc = cfg["model"], cfg["pooling"], cfg["size"], cfg["scales"]
    sh = parse_shard(shard)
    dev = resolve_device(device)
    from retrievalkit.models.registry import BACKBONES

    spec = BACKBONES.get(str(model)) if model is not None else None
    if spec is not None and weights is None and spec.default_weights == "random" and spec.name != "tiny-cnn":
        info(f"[yellow]note:[/] --model {spec.name} without --weights: randomly initialised (no bundled weights); "
             "descriptors will be poor")
    names, _ = resolve_inputs(images, list_file, gnd, split, not no_boxes)
    s, e = select_shard(names, sh)
    failures: list[str] = []

    def on_failure(name: str, reason: str) -> None:
        failures.append(name)
        err_console.print(f"[yellow]warning:[/] {images / name}: {reason}; skipped (recorded in the output)",
                          soft_wrap=True)

    if local:
        from retrievalkit.extract.local_desc import DEFAULT_SCALES, extract_local

        lsc = parse_floats(local_scales, "--local-scales") or list(DEFAULT_SCALES)
        with progress_bar("extract --local", e - s) as adv:
            out = extract_local(
                images, output, method=local_method, model=model, weights=str(weights) if weights else None,
                layer=local_layer, size=size or None, scales=lsc, max_features=max_features, pca=pca,
                pca_dim=pca_dim, gnd=gnd, split=split, use_boxes=not no_boxes, list_file=list_file, shard=sh,
                device=dev, half=half, progress=adv, on_failure=on_failure)
        if failures:
            info(f"[yellow]{len(failures)} image(s) could not be read[/]; see the 'failed' list in {out}")
        echo_path(out)
        return
    from retrievalkit.extract.distributed import extract_global_distributed, launched_by_torchrun

    opts = dict(model=model, weights=str(weights) if weights else None, pooling=pooling, p=p,
                whitening=str(whitening) if whitening else None, size=size or None, scales=sc,
                batch_size=batch_size, workers=workers, list_file=list_file, gnd=gnd, split=split,
                use_boxes=not no_boxes, resume=resume, half=half, upscale=upscale, regions=regions,
                on_failure=on_failure)
    if launched_by_torchrun():  # one shard per process, rank 0 merges
        out = extract_global_distributed(images, output, device=dev, shard=sh, **opts)
        if out is not None:
            echo_path(out)
        return
    with progress_bar("extract", e - s) as adv:
        out = extract_global(images, output, device=dev, shard=sh, progress=adv, **opts)
    if failures:
        info(f"[yellow]{len(failures)} image(s) could not be read[/]; see the 'failed' list in {out}")
    echo_path(out)


@handle_errors
def merge_cmd(
    inputs: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="Shard outputs to join.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Merged features file.")],
):
    """Join the outputs of `rkit extract --shard I/N` into one features file (checked for gaps and overlap).

    Example: rkit merge feats.1.h5 feats.2.h5 -o feats.h5 (index parts: the same as rkit index merge)
    """
    from retrievalkit.search.index_stages import is_index_file

    if inputs and is_index_file(inputs[0]):
        from retrievalkit.search.index_stages import merge_index

        return echo_path(merge_index(inputs, output))
    from retrievalkit.extract.merge import merge_features

    echo_path(merge_features(inputs, output))


def register(app: typer.Typer) -> None:
    app.command("extract")(extract_cmd)
    app.command("merge")(merge_cmd)
