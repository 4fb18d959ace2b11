"""``rkit extract``: global descriptors of a folder of images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retrievalkit.cli import options as opt
from retrievalkit.cli.common import (
    echo_path,
    err_console,
    handle_errors,
    info,
    parse_floats,
    progress_bar,
    resolve_device,
)
from retrievalkit.cli.options import command, config_from_options, default_of, refuse_inapplicable
from retrievalkit.configs.extract import GlobalExtractConfig, LocalExtractConfig
from retrievalkit.errors import UsageError


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


_G, _L = GlobalExtractConfig, LocalExtractConfig
_LOCAL_ONLY = "extract without --local (it is an option of local features)"


@handle_errors
def extract_cmd(
    images: Annotated[Path, typer.Argument(help="Folder of images (searched recursively); names are relative to it.")],
    output: opt.output("Features file to write (.h5); with --local a locals file."),
    preset: Annotated[str | None, typer.Option(help="Named settings (gem-lite0-512, gem-lite0-1024-ms, "
                                               "gem-r101-1024, ...); options you give win.")] = None,
    model: opt.model("Backbone name (efficientnet-lite0, resnet50, ...) or a model file (rkit train output, "
                     f"cirtorch or torchvision checkpoint) {default_of(_G, 'model')}.") = None,
    weights: opt.weights() = None,
    pooling: Annotated[str | None, typer.Option(help="mac, spoc, gem, gemmp or rmac (default: the model's, "
                                                "gem).")] = None,
    p: Annotated[float | None, typer.Option("--p", help="GeM power, > 0 (default: the model's, 3).")] = None,
    whitening: opt.whitening("Whitening file (rkit whiten) applied in the network.") = None,
    size: opt.size(f"Longer image side in pixels (0: original size) {default_of(_G, 'size')}. Never upscales "
                   "unless --upscale.") = None,
    scales: opt.scales(f"Comma-separated scales, e.g. 1,0.7071,0.5 {default_of(_G, 'scales')}; combined by GeM. "
                       f"With --local deep: the pyramid {default_of(_L, 'scales')}.") = None,
    device: opt.Device = None,
    batch_size: opt.batch_size(f"Images per forward pass (same-sized images are batched) "
                               f"{default_of(_G, 'batch_size')}.") = None,
    workers: opt.workers(f"Decoding worker processes {default_of(_G, 'workers')}.") = None,
    list_file: Annotated[Path | None, typer.Option(
        "--list", help="Text file of image names to take, one per line, relative to the folder (extension "
                       "optional).")] = None,
    gnd: Annotated[Path | None, typer.Option(help="revisitop ground truth (.json/.pkl): take names from it.")]
    = None,
    split: Annotated[str | None, typer.Option(help="With --gnd: database or queries.")] = None,
    no_boxes: Annotated[bool | None, typer.Option("--no-boxes", help="With --gnd: ignore query boxes (bbx).")]
    = None,
    resume: opt.resume("Continue an interrupted run from its partial output.") = None,
    shard: opt.shard("Process only block I of N (I/N); join with rkit merge.") = None,
    half: Annotated[bool | None, typer.Option("--half", help="Store vectors as float16.")] = None,
    upscale: Annotated[bool | None, typer.Option("--upscale", help="Also enlarge images smaller than --size.")]
    = None,
    regions: Annotated[bool | None, typer.Option("--regions", help="Store R-MAC region vectors (several per "
                                                 "image) for regional diffusion.")] = None,
    local: Annotated[bool, typer.Option("--local", help="Extract local features (a locals file) instead: "
                                        "see --local-method.")] = False,
    local_method: Annotated[str | None, typer.Option(help="With --local: deep (strongest CNN activations, HOW), "
                                                     "sift (RootSIFT) or dsm (blobs on the activation maps, for "
                                                     f"Deep Spatial Matching) {default_of(_L, 'method')}.")] = None,
    max_features: Annotated[int | None, typer.Option(help="With --local: local features kept per image "
                                                     f"{default_of(_L, 'max_features')}.")] = None,
    local_layer: Annotated[str | None, typer.Option(help="With --local deep or dsm: s16 (EfficientNet-Lite's "
                                                    "stride-16 expansion layer), head (the model's output map) or "
                                                    "auto (deep: s16 where the backbone has it; dsm: head) "
                                                    f"{default_of(_L, 'layer')}.")]
    = None,
    pca: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="With --local deep: reuse the "
                                                "PCA-whitening of this (database) locals file; default: learn "
                                                "one on this run's images.")] = None,
    dim: opt.dim(f"With --local deep: PCA-whitened dimension (0: no PCA) {default_of(_L, 'dim')}.") = None,
):
    """Extract one global descriptor per image (CNN backbone + MAC/SPoC/GeM/R-MAC pooling, multi-scale), or
    with --local a variable number of local features per image (deep activations or RootSIFT).

    Example: rkit extract photos/ -o feats.h5 --scales 1,0.7071,0.5
    Example: rkit extract photos/ --preset gem-r101-1024 --weights retrievalSfM120k-gem-r101.pth -o feats.h5
    Example: rkit extract photos/ --local --local-method sift --size 1024 -o db.loc.h5
    Example: rkit extract photos/ --local --local-method dsm -o db.dsm.h5
    Example: torchrun --nproc_per_node 4 -m retrievalkit extract photos/ -o feats.h5 --device cuda
    """
    from retrievalkit.extract.presets import resolve_settings
    from retrievalkit.images.discover import parse_shard

    if list_file is not None and list_file.exists() and not list_file.is_file():
        list_file = _read_once(list_file)
    if gnd is None:
        refuse_inapplicable("extract without --gnd", {"--split": split, "--no-boxes": no_boxes})
    inputs = dict(images=images, list_file=list_file, gnd=gnd, split=split, use_boxes=not no_boxes)
    sh = parse_shard(shard)
    if local:
        refuse_inapplicable("extract --local (global-descriptor option)", {
            "--preset": preset, "--pooling": pooling, "--p": p, "--whitening": whitening, "--batch-size": batch_size,
            "--workers": workers, "--resume": resume, "--upscale": upscale, "--regions": regions})
        cfg = config_from_options(LocalExtractConfig, method=local_method, model=model,
                                  weights=str(weights) if weights else None, layer=local_layer, size=size,
                                  scales=parse_floats(scales, "--scales"), max_features=max_features, dim=dim,
                                  half=half)
        if cfg.method == "sift":
            refuse_inapplicable("extract --local --local-method sift (deep local features only)", {
                "--model": model, "--weights": weights, "--local-layer": local_layer, "--scales": scales,
                "--pca": pca, "--dim": dim})
        if cfg.method == "dsm":
            refuse_inapplicable("extract --local --local-method dsm (one scale, no descriptors)", {
                "--scales": scales, "--pca": pca, "--dim": dim})
        _extract_local(cfg, inputs, output, pca, sh, resolve_device(device))
        return
    refuse_inapplicable(_LOCAL_ONLY, {"--local-method": local_method, "--max-features": max_features,
                                      "--local-layer": local_layer, "--pca": pca, "--dim": dim})
    settings = resolve_settings(preset, model=model, pooling=pooling, size=size,
                                scales=parse_floats(scales, "--scales"))
    cfg = config_from_options(
        GlobalExtractConfig, model=settings["model"], weights=str(weights) if weights else None,
        pooling=settings["pooling"], p=p, whitening=str(whitening) if whitening else None, size=settings["size"],
        scales=tuple(settings["scales"]), batch_size=batch_size, workers=workers, half=half, upscale=upscale,
        regions=regions)
    _extract_global(cfg, inputs, output, bool(resume), sh, resolve_device(device))


def _on_failure(images: Path, failures: list[str]):
    def on_failure(name: str, reason: str) -> None:
        failures.append(name)
        err_console.print(f"[yellow]warning:[/] {images / name}: {reason}; skipped (recorded in the output)",
                          soft_wrap=True)

    return on_failure


def _finish(out: Path | None, failures: list[str]) -> None:
    if out is None:
        return
    if failures:
        info(f"[yellow]{len(failures)} image(s) could not be read[/]; see the 'failed' list in {out}")
    echo_path(out)


def _extract_local(cfg: LocalExtractConfig, inputs: dict, output: Path, pca: Path | None, sh, dev: str) -> None:
    from retrievalkit.extract.inputs import resolve_inputs
    from retrievalkit.extract.local_desc import extract_local
    from retrievalkit.images.discover import select_shard

    names, _ = resolve_inputs(inputs["images"], inputs["list_file"], inputs["gnd"], inputs["split"],
                              inputs["use_boxes"])
    s, e = select_shard(names, sh)
    failures: list[str] = []
    with progress_bar("extract --local", e - s) as adv:
        out = extract_local(
            inputs["images"], output, cfg, pca=pca, list_file=inputs["list_file"], gnd=inputs["gnd"],
            split=inputs["split"], use_boxes=inputs["use_boxes"], shard=sh, device=dev, progress=adv,
            on_failure=_on_failure(inputs["images"], failures))
    _finish(out, failures)


def _extract_global(cfg: GlobalExtractConfig, inputs: dict, output: Path, resume: bool, sh, dev: str) -> None:
    from retrievalkit.extract.distributed import run_distributed, world
    from retrievalkit.extract.global_desc import extract_global
    from retrievalkit.extract.inputs import resolve_inputs
    from retrievalkit.images.discover import select_shard
    from retrievalkit.models.registry import BACKBONES

    spec = BACKBONES.get(str(cfg.model))
    if spec is not None and cfg.weights is None and spec.default_weights == "random" and spec.name != "tiny-cnn":
        info(f"[yellow]note:[/] --model {spec.name} without --weights: randomly initialised (no bundled weights); "
             "descriptors will be poor")
    names, _ = resolve_inputs(inputs["images"], inputs["list_file"], inputs["gnd"], inputs["split"],
                              inputs["use_boxes"])
    s, e = select_shard(names, sh)
    failures: list[str] = []

    def run(shard_, output_, device_, progress_):
        return extract_global(inputs["images"], output_, cfg, device=device_,
                              list_file=inputs["list_file"], gnd=inputs["gnd"], split=inputs["split"],
                              use_boxes=inputs["use_boxes"], resume=resume, shard=shard_, progress=progress_,
                              on_failure=_on_failure(inputs["images"], failures))

    if world()[2] > 1:  # launched by torchrun: one shard per process, rank 0 merges
        if sh is not None:
            raise UsageError("--shard and torchrun both split the work; use one of them")
        _finish(run_distributed(lambda shard_, part, dev_: run(shard_, part, dev_, None), output, dev), failures)
        return
    with progress_bar("extract", e - s) as adv:
        out = run(sh, output, dev, adv)
    _finish(out, failures)


@handle_errors
def merge_cmd(
    inputs: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="Shard outputs to join.")],
    output: opt.output("Merged features file."),
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
    command(app, "extract", extract_cmd, renamed={"--local-scales": "--scales", "--pca-dim": "--dim"})
    command(app, "merge", merge_cmd)
