"""``rkit train``: fine-tune a retrieval network on mined tuples; ``rkit train import-cirtorch``: import cirtorch
training data as a tuples file."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer

from retrievalkit.cli.common import (
    default_command_group,
    echo_path,
    err_console,
    handle_errors,
    info,
    resolve_device,
    state,
)

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


@train_app.command("run")
@handle_errors
def train_cmd(
    tuples: Annotated[Path, typer.Argument(help="Tuples file (rkit sfm-mine / manifold-mine / import-cirtorch).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Model file to write (after every epoch); "
                                         "STEM.state.pt and STEM.log.json are written next to it.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Starting network: backbone name or model file.")]
    = "efficientnet-lite0",
    pooling: Annotated[str | None, typer.Option(help="Pooling (default: the model's, gem).")] = None,
    p: Annotated[float | None, typer.Option(help="Initial GeM power (default: the model's, 3).")] = None,
    whitening: Annotated[Path | None, typer.Option(help="Whitening file (rkit whiten) that initialises a "
                                                      "whitening layer, trained along.")] = None,
    loss: Annotated[str, typer.Option(help="contrastive, triplet or recall-k.")] = "contrastive",
    margin: Annotated[float | None, typer.Option(help="Margin (default 0.7 contrastive, 0.1 triplet).")] = None,
    ks: Annotated[str, typer.Option(help="recall-k: the k values averaged.")] = "1,2,4,8,16",
    tau1: Annotated[float, typer.Option(help="recall-k: temperature of the recall sigmoid.")] = 1.0,
    tau2: Annotated[float, typer.Option(help="recall-k: temperature of the rank sigmoid.")] = 0.01,
    mixup: Annotated[bool, typer.Option(help="recall-k: similarity mixup (SiMix) virtual positives.")] = False,
    epochs: Annotated[int, typer.Option(help="Epochs.")] = 10,
    batch_size: Annotated[int, typer.Option(help="Tuples per optimiser step.")] = 5,
    query_size: Annotated[int, typer.Option(help="Training tuples drawn per epoch.")] = 2000,
    pool_size: Annotated[int, typer.Option(help="Random images per epoch searched for hard negatives "
                                           "(0: the tuples' fixed negatives).")] = 20000,
    num_neg: Annotated[int, typer.Option(help="Hard negatives per tuple (one per cluster).")] = 5,
    lr: Annotated[float, typer.Option(help="Learning rate (Adam); GeM p gets --pool-lr-mult times it.")] = 1e-6,
    pool_lr_mult: Annotated[float, typer.Option(help="Learning-rate factor of GeM p.")] = 10.0,
    weight_decay: Annotated[float, typer.Option(help="Weight decay.")] = 1e-6,
    lr_decay: Annotated[float, typer.Option(help="Learning rate x exp(-LR_DECAY) after each epoch.")] = 0.01,
    size: Annotated[int, typer.Option(help="Longer image side in pixels for training (0: original).")] = 362,
    chunk: Annotated[int | None, typer.Option(help="Two-pass large batches: images embedded with a graph at "
                                                 "once (memory flat in the batch size); default one pass.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (tuple order, pools, initialisation).")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue from STEM.state.pt (same options; --epochs may grow).")]
    = False,
    images: Annotated[Path | None, typer.Option(help="Folder the tuples' names are relative to (default: "
                                                   "the file's image_root).")] = None,
    val_gnd: Annotated[Path | None, typer.Option(help="Ground truth to report mAP on after each epoch.")]
    = None,
    val_images: Annotated[Path | None, typer.Option(help="Image folder of --val-gnd.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N].")] = "auto",
    cache_images: Annotated[bool, typer.Option(help="Keep decoded training images in memory.")] = True,
):
    """Fine-tune backbone + GeM (+ whitening) on tuples with hard negatives re-mined every epoch.

    Example: rkit train tuples.h5 -o model.pt --loss contrastive --epochs 20 --size 362 --lr 1e-6
    """
    from retrievalkit.train.loop import TrainConfig, parse_ks, train

    cfg = TrainConfig(model=model, pooling=pooling, p=p, whitening=str(whitening) if whitening else None, loss=loss,
                      margin=margin, ks=parse_ks(ks), tau1=tau1, tau2=tau2, mixup=mixup, epochs=epochs,
                      batch_size=batch_size, query_size=query_size, pool_size=pool_size, num_neg=num_neg, lr=lr,
                      pool_lr_mult=pool_lr_mult, weight_decay=weight_decay, lr_decay=lr_decay, size=size or None,
                      chunk=chunk, seed=seed, device=resolve_device(device),
                      val_gnd=str(val_gnd) if val_gnd else None, val_images=str(val_images) if val_images else None,
                      cache_images=cache_images)
    bar = _EpochBar()
    with bar if bar.enabled else nullcontext():
        out = train(tuples, output, cfg, images=images, resume=resume, events=bar)
    echo_path(out)


@train_app.command("import-cirtorch")
@handle_errors
def import_cmd(
    pkl: Annotated[Path, typer.Argument(help="cirtorch retrieval-SfM-120k.pkl / retrieval-SfM-30k.pkl.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Tuples file to write (.h5).")],
    image_root: Annotated[str, typer.Option(help="Folder holding cirtorch's ims/ tree (stored in the file).")]
    = "",
    val: Annotated[bool, typer.Option(help="Keep the 'val' split as held-out pairs.")] = True,
    layout: Annotated[str, typer.Option(help="Image names: cirtorch (ab/cd/ef/CID) or flat (CID).")] = "cirtorch",
):
    """Convert cirtorch training data (cids, cluster, qidxs, pidxs) to a tuples file for rkit train / whiten.

    Example: rkit train import-cirtorch retrieval-SfM-120k.pkl --image-root data/train/retrieval-SfM-120k/ims -o t.h5
    """
    from retrievalkit.train.cirtorch_import import import_cirtorch

    echo_path(import_cirtorch(pkl, output, image_root, val=val, layout=layout))


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
