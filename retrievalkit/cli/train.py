"""``rkit train``: fine-tune a retrieval network on mined tuples; ``rkit train import-cirtorch``: import cirtorch
training data as a tuples file."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer

from retrievalkit.cli import options as opt
from retrievalkit.cli.common import (
    default_command_group,
    echo_path,
    err_console,
    handle_errors,
    info,
    resolve_device,
    state,
)
from retrievalkit.cli.options import command, config_from_options, default_of, refuse_inapplicable
from retrievalkit.configs.train import CirtorchImportConfig, SelfSupervisedConfig, TrainConfig
from retrievalkit.errors import UsageError

train_app = typer.Typer(
    cls=default_command_group("run"), no_args_is_help=True,
    help="Fine-tune a network on a tuples file (rkit train TUPLES.h5 -o model.pt), or import cirtorch training "
         "data (rkit train import-cirtorch retrieval-SfM-120k.pkl -o tuples.h5). Training options: "
         "rkit train run --help.")


class _EpochBar:
    """A rich progress bar per epoch showing the running loss (stderr; silent with -q or off a terminal)."""

    def __init__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.enabled = not state.quiet and err_console.is_terminal
        self.prog = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), console=err_console)
        self.task = None
        self.total = 0.0
        self.count = 0

    def __call__(self, kind: str, data: dict) -> None:
        if kind == "epoch_start":
            self.total, self.count = 0.0, 0
            if self.enabled:
                self.task = self.prog.add_task(f"epoch {data['epoch']}/{data['epochs']}", total=data["batches"],
                                               loss="-")
        elif kind == "batch":
            self.total += data["loss"]
            self.count += 1
            if self.enabled and self.task is not None:
                self.prog.update(self.task, advance=1, loss=f"{self.total / self.count:.4f}")
        elif kind == "epoch_end":
            shown = {k: v for k, v in data.items() if k not in ("lr",)}
            info("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()))

    def __enter__(self):
        if self.enabled:
            self.prog.__enter__()
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self.prog.__exit__(*exc)


_T = TrainConfig


def _d(field: str) -> str:
    return default_of(_T, field)


def _ds(field: str) -> str:
    return default_of(SelfSupervisedConfig, field)


@handle_errors
def train_cmd(
    tuples: Annotated[Path, typer.Argument(help="Tuples file (rkit sfm-mine / manifold-mine / import-cirtorch); "
                                                "with --loss infonce, a folder of images (self-supervised).")],
    output: opt.output("Model file to write (after every epoch); STEM.state.pt and STEM.log.json are written next "
                       "to it."),
    model: opt.model(f"Starting network: backbone name or model file {_d('model')}.") = None,
    pooling: Annotated[str | None, typer.Option(help="Pooling (default: the model's, gem).")] = None,
    p: Annotated[float | None, typer.Option("--p", help="Initial GeM power, > 0 (default: the model's, 3).")] = None,
    whitening: opt.whitening("Whitening file (rkit whiten) that initialises a whitening layer, trained along.")
    = None,
    loss: Annotated[str | None, typer.Option(help="contrastive, triplet, recall-k or joint (contrastive + landmark "
                                             f"classification, learned balance) {_d('loss')}; infonce: "
                                             "self-supervised copy-detection training (SSCD) on a folder of "
                                             "images.")] = None,
    temperature: Annotated[float | None, typer.Option(help=f"infonce: temperature {_ds('temperature')}.")] = None,
    entropy_weight: Annotated[float | None, typer.Option(help="infonce: weight of the differential-entropy "
                                                         f"regulariser {_ds('entropy_weight')}.")] = None,
    margin: Annotated[float | None, typer.Option(help="Margin (default 0.7 contrastive and joint, 0.1 triplet).")]
    = None,
    ks: Annotated[str | None, typer.Option(help=f"recall-k: the k values averaged {_d('ks')}.")] = None,
    tau1: Annotated[float | None, typer.Option(help=f"recall-k: temperature of the recall sigmoid {_d('tau1')}.")]
    = None,
    tau2: Annotated[float | None, typer.Option(help=f"recall-k: temperature of the rank sigmoid {_d('tau2')}.")]
    = None,
    mixup: Annotated[bool | None, typer.Option("--mixup", help="recall-k: similarity mixup (SiMix) virtual "
                                               "positives.")] = None,
    cls_scale: Annotated[float | None, typer.Option(help="joint: scale of the cosine classifier (default: AdaCos "
                                                    "sqrt(2) ln(C-1) for C classes).")] = None,
    head_lr_mult: Annotated[float | None, typer.Option(help="joint: learning-rate factor of the class prototypes and "
                                                       f"the learned loss weights {_d('head_lr_mult')}.")] = None,
    epochs: Annotated[int | None, typer.Option(help=f"Epochs {_d('epochs')}.")] = None,
    tuples_per_step: Annotated[int | None, typer.Option(help=f"Tuples per optimiser step {_d('tuples_per_step')}.")]
    = None,
    query_size: Annotated[int | None, typer.Option(help=f"Training tuples drawn per epoch {_d('query_size')}.")]
    = None,
    pool_size: Annotated[int | None, typer.Option(help="Random images per epoch searched for hard negatives "
                                                  f"(0: the tuples' fixed negatives) {_d('pool_size')}.")] = None,
    num_neg: Annotated[int | None, typer.Option(help=f"Hard negatives per tuple (one per cluster) {_d('num_neg')}.")]
    = None,
    lr: Annotated[float | None, typer.Option(help=f"Learning rate (Adam) {_d('lr')}; GeM p gets --pool-lr-mult "
                                             "times it.")] = None,
    pool_lr_mult: Annotated[float | None, typer.Option(help=f"Learning-rate factor of GeM p {_d('pool_lr_mult')}.")]
    = None,
    weight_decay: Annotated[float | None, typer.Option(help=f"Weight decay {_d('weight_decay')}.")] = None,
    lr_decay: Annotated[float | None, typer.Option(help="Learning rate x exp(-LR_DECAY) after each epoch "
                                                   f"{_d('lr_decay')}.")] = None,
    size: opt.size(f"Longer image side in pixels for training (0: original) {_d('size')}.") = None,
    batch_size: opt.batch_size("Images per forward pass: the step's tuples are embedded in two passes with "
                               "memory flat in --tuples-per-step (the same gradient). Default: one pass.") = None,
    seed: opt.seed(f"Random seed (tuple order, pools, initialisation) {_d('seed')}.") = None,
    resume: opt.resume("Continue from STEM.state.pt (same options; --epochs may grow).") = None,
    images: opt.images("Folder the tuples' names are relative to (default: the file's image_root).") = None,
    val_gnd: Annotated[Path | None, typer.Option(help="Ground truth to report mAP on after each epoch.")]
    = None,
    val_images: Annotated[Path | None, typer.Option(help="Image folder of --val-gnd.")] = None,
    device: opt.Device = None,
    cache_images: Annotated[bool | None, typer.Option("--cache-images/--no-cache-images",
                                                      help=f"Keep decoded training images in memory "
                                                           f"{_d('cache_images')}.")] = None,
    workers: opt.workers(f"infonce: data-loader worker processes making the augmented views {_ds('workers')}.")
    = None,
):
    """Fine-tune backbone + GeM (+ whitening) on tuples with hard negatives re-mined every epoch.

    Example: rkit train tuples.h5 -o model.pt --loss contrastive --epochs 20 --size 362 --lr 1e-6
    Example: rkit train tuples.h5 -o model.pt --loss recall-k --tuples-per-step 64 --batch-size 16 --mixup
    Example: rkit train tuples.h5 -o model.pt --loss joint --epochs 20
    Example: rkit train images/ -o sscd.pt --loss infonce --epochs 20 --size 160

    With --loss infonce (self-supervised copy detection, SSCD) the positional argument is a folder of images,
    --tuples-per-step counts images (two views each) and --batch-size views; that mode's defaults are those of
    SelfSupervisedConfig: --epochs 20, --tuples-per-step 32, --batch-size 32, --lr 1e-4, --size 160.
    """
    from retrievalkit.train.loop import parse_ks, train

    if loss == "infonce":
        return _selfsup(tuples, output, resume, device, locals())
    refuse_inapplicable(f"--loss {loss or TrainConfig.loss} (it is an option of --loss infonce)",
                        {"--temperature": temperature, "--entropy-weight": entropy_weight, "--workers": workers})
    cfg = config_from_options(
        TrainConfig, model=model, pooling=pooling, p=p, whitening=str(whitening) if whitening else None, loss=loss,
        margin=margin, ks=parse_ks(ks) if ks is not None else None, tau1=tau1, tau2=tau2, mixup=mixup,
        cls_scale=cls_scale, head_lr_mult=head_lr_mult, epochs=epochs, tuples_per_step=tuples_per_step,
        query_size=query_size, pool_size=pool_size,
        num_neg=num_neg, lr=lr, pool_lr_mult=pool_lr_mult, weight_decay=weight_decay, lr_decay=lr_decay,
        size=size, batch_size=batch_size, seed=seed, val_gnd=str(val_gnd) if val_gnd else None,
        val_images=str(val_images) if val_images else None, cache_images=cache_images)
    cfg.size = cfg.size or None
    if cfg.loss != "joint":
        refuse_inapplicable(f"--loss {cfg.loss} (it is an option of --loss joint)",
                            {"--cls-scale": cls_scale, "--head-lr-mult": head_lr_mult})
    if cfg.loss != "recall-k":
        refuse_inapplicable(f"--loss {cfg.loss} (it is an option of --loss recall-k)",
                            {"--ks": ks, "--tau1": tau1, "--tau2": tau2, "--mixup": mixup})
    else:
        refuse_inapplicable("--loss recall-k (it is an option of the tuple losses)", {"--margin": margin})
    if cfg.batch_size is not None and cfg.batch_size > cfg.tuples_per_step * (2 + cfg.num_neg):
        raise UsageError(f"--batch-size {cfg.batch_size} is images per forward pass, more than a step of "
                         f"--tuples-per-step {cfg.tuples_per_step} holds; tuples per step were --batch-size before")
    cfg.device = resolve_device(device)
    bar = _EpochBar()
    with bar if bar.enabled else nullcontext():
        out = train(tuples, output, cfg, images=images, resume=bool(resume), events=bar)
    echo_path(out)


_SELFSUP_OPTIONS = ("model", "pooling", "p", "whitening", "temperature", "entropy_weight", "epochs",
                    "tuples_per_step", "lr", "pool_lr_mult", "weight_decay", "lr_decay", "size", "batch_size", "seed",
                    "cache_images", "workers")
_NOT_SELFSUP = ("margin", "ks", "tau1", "tau2", "mixup", "query_size", "pool_size", "num_neg", "images", "val_gnd",
                "val_images", "cls_scale", "head_lr_mult")


def _selfsup(images: Path, output: Path, resume, device, given: dict) -> None:
    """``rkit train run IMAGES_DIR --loss infonce``: self-supervised copy-detection training."""
    from retrievalkit.train.selfsup import train_selfsupervised

    refuse_inapplicable("--loss infonce (self-supervised training on a folder of images)",
                        {"--" + k.replace("_", "-"): given[k] for k in _NOT_SELFSUP})
    if not images.is_dir():
        raise UsageError(f"{images}: --loss infonce trains on a folder of images; give the folder (not a tuples "
                         "file)")
    options = {k: given[k] for k in _SELFSUP_OPTIONS}
    if options["whitening"] is not None:
        options["whitening"] = str(options["whitening"])
    cfg = config_from_options(SelfSupervisedConfig, **options)
    cfg.device = resolve_device(device)
    bar = _EpochBar()
    with bar if bar.enabled else nullcontext():
        out = train_selfsupervised(images, output, cfg, resume=bool(resume), events=bar)
    echo_path(out)


@handle_errors
def import_cmd(
    pkl: Annotated[Path, typer.Argument(help="cirtorch retrieval-SfM-120k.pkl / retrieval-SfM-30k.pkl.")],
    output: opt.output("Tuples file to write (.h5)."),
    images: Annotated[str, typer.Option("--images", help="Folder holding cirtorch's ims/ tree (stored in the "
                                        "file).")] = "",
    val: Annotated[bool | None, typer.Option("--val/--no-val", help="Keep the 'val' split as held-out pairs "
                                             f"{default_of(CirtorchImportConfig, 'val')}.")] = None,
    layout: Annotated[str | None, typer.Option(help="Image names: cirtorch (ab/cd/ef/CID) or flat (CID) "
                                               f"{default_of(CirtorchImportConfig, 'layout')}.")] = None,
):
    """Convert cirtorch training data (cids, cluster, qidxs, pidxs) to a tuples file for rkit train / whiten.

    Example: rkit train import-cirtorch retrieval-SfM-120k.pkl --images data/train/retrieval-SfM-120k/ims -o t.h5
    """
    from retrievalkit.train.cirtorch_import import import_cirtorch

    cfg = config_from_options(CirtorchImportConfig, val=val, layout=layout)
    echo_path(import_cirtorch(pkl, output, cfg, image_root=images))


def register(app: typer.Typer) -> None:
    command(train_app, "run", train_cmd, renamed={"--chunk": "--batch-size (images per forward pass; tuples per "
                                                              "optimiser step are --tuples-per-step)"})
    command(train_app, "import-cirtorch", import_cmd, renamed={"--image-root": "--images"})
    app.add_typer(train_app, name="train")
