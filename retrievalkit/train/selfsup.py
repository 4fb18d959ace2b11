"""Self-supervised copy-detection training (SSCD, Pizzi et al. CVPR 2022): ``rkit train run IMAGES_DIR --loss
infonce``.

Every image of a folder is a class of its own: each step takes ``tuples_per_step`` images, two copy-augmented
views of each (:func:`retrievalkit.copydetect.augment.copy_view`, made in the data-loader workers and seeded by
(seed, epoch, image), so a run is reproducible whatever the number of workers); the views of one image are
positives, every other view a negative. Loss: InfoNCE (temperature τ) + λ × SSCD's differential-entropy
regulariser (:func:`~retrievalkit.train.losses.infonce_loss`, :func:`~retrievalkit.train.losses.entropy_loss`).
The step's views are embedded with the two-pass large batch of :func:`retrievalkit.train.batch.batch_backward`
(``batch_size`` views per forward pass, the same gradient as one pass), with the network in eval mode (frozen
BatchNorm statistics) as in supervised training. The model file, the resumable state and the JSON log are those
of ``rkit train`` (``--resume`` continues a run), and the model file goes straight into
``rkit copy-detect --model``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from retrievalkit.configs.checks import stage_config
from retrievalkit.configs.train import SelfSupervisedConfig
from retrievalkit.copydetect.augment import copy_view
from retrievalkit.errors import BadInputError
from retrievalkit.images.loader import iterate_quietly
from retrievalkit.io.output import atomic_file, config_paths, write_text, writes_output
from retrievalkit.train.batch import batch_backward
from retrievalkit.train.losses import entropy_loss, infonce_loss

VIEWS = 2


class ViewDataset(torch.utils.data.Dataset):
    """Item ``(i, epoch)``: two augmented, standardised views (2, 3, S, S) of image ``i`` and ``i``.

    Images are decoded at a longer side of 1.5 × ``size`` (enough for crops) and kept per worker process when
    ``cache`` is on. Overlays and image-in-image take a second, random image of the folder.
    """

    def __init__(self, root: str | os.PathLike, names: Sequence[str], size: int, mean: Sequence[float],
                 std: Sequence[float], seed: int, strength: float = 1.0, cache: bool = True):
        self.root = Path(root)
        self.names = list(names)
        self.size = int(size)
        self.load_size = int(round(1.5 * size))
        self.mean = np.asarray(mean, np.float32).reshape(1, 1, 3)
        self.std = np.asarray(std, np.float32).reshape(1, 1, 3)
        self.seed = int(seed)
        self.strength = float(strength)
        self.cache: dict[int, np.ndarray] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.names)

    def image(self, i: int) -> np.ndarray:
        from retrievalkit.images.decode import ImageReadError, load_image, resize_longer

        if self.cache is not None and i in self.cache:
            return self.cache[i]
        path = self.root / self.names[i]
        try:
            img = resize_longer(load_image(path), self.load_size)
        except ImageReadError as e:
            raise BadInputError(f"{path}: {e}; remove it from the training folder") from None
        if self.cache is not None:
            self.cache[i] = img
        return img

    def views(self, i: int, epoch: int) -> list[np.ndarray]:
        """The uint8 views of image ``i`` in ``epoch`` (deterministic in seed, epoch, i)."""
        rng = np.random.default_rng([self.seed, epoch, i])
        img = self.image(i)
        other = self.image(int(rng.integers(len(self.names))))
        return [copy_view(img, rng, self.size, self.strength, others=[other]) for _ in range(VIEWS)]

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, int] | str:
        """The views and ``i``; an unreadable image comes back as its one-line message (an error raised in a
        worker process would reach the user wrapped in the worker's traceback)."""
        i, epoch = (int(v) for v in item)
        try:
            views = self.views(i, epoch)
        except BadInputError as e:
            return str(e)
        xs = [(v.astype(np.float32) / 255.0 - self.mean) / self.std for v in views]
        return torch.from_numpy(np.ascontiguousarray(np.stack(xs).transpose(0, 3, 1, 2))), i


def _collate(items: list) -> tuple[torch.Tensor, torch.Tensor] | str:
    """A step's items stacked, or the first unreadable image's message (runs in the worker process)."""
    for it in items:
        if isinstance(it, str):
            return it
    return torch.stack([x for x, _ in items]), torch.tensor([i for _, i in items])


def epoch_order(n: int, seed: int, epoch: int, per_step: int, rank: int = 0, world: int = 1) -> list[list[int]]:
    """The images of each step of ``epoch``: a seeded permutation cut into steps of ``per_step`` (a last step
    of fewer than 2 images is dropped); under torchrun each rank keeps every world-th image of a step."""
    perm = np.random.default_rng([seed, epoch, 7]).permutation(n)
    steps = [perm[s:s + per_step].tolist() for s in range(0, n, per_step)]
    steps = [st for st in steps if len(st) >= 2]
    return [st[rank::world] if len(st[rank::world]) >= 2 else st[:2] for st in steps]


class _StepSampler(torch.utils.data.Sampler):
    def __init__(self, steps: list[list[int]], epoch: int):
        self.steps, self.epoch = steps, epoch

    def __iter__(self):
        return iter([[(i, self.epoch) for i in st] for st in self.steps])

    def __len__(self) -> int:
        return len(self.steps)


def selfsup_loss(temperature: float, entropy_weight: float, labels: torch.Tensor,
                 parts: dict | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """``fn(e)``: InfoNCE + entropy_weight × entropy of the view embeddings ``e`` with image ``labels``;
    the two terms' values go into ``parts`` when given."""

    def fn(e: torch.Tensor) -> torch.Tensor:
        nce = infonce_loss(e, labels, temperature)
        ent = entropy_loss(e, labels) if entropy_weight > 0 else e.new_zeros(())
        if parts is not None:
            parts["infonce"], parts["entropy"] = float(nce.detach()), float(ent.detach())
        return nce + entropy_weight * ent

    return fn


@writes_output("output", inputs=("images", config_paths("model", "whitening")))
def train_selfsupervised(images: str | os.PathLike, output: str | os.PathLike,
                         config: SelfSupervisedConfig | None = None, *, resume: bool = False,
                         progress: Callable[[int], None] | None = None,
                         events: Callable[[str, dict], None] | None = None) -> Path:
    """Train a copy-detection descriptor on a folder of images without labels; write ``output`` (an rkit model
    file) after every epoch, with ``<stem>.state.pt`` (for ``resume``) and ``<stem>.log.json`` beside it.

    ``progress`` advances by 1 per optimiser step; ``events`` gets ``epoch_start`` {epoch, epochs, batches},
    ``batch`` {loss} and ``epoch_end`` (the record).
    """
    from retrievalkit.images.discover import find_images
    from retrievalkit.train.loop import (
        _all_reduce_grads,
        _dist_device,
        _resume,
        build_net,
        make_optimizer,
        state_path,
        step_events,
    )

    cfg = SelfSupervisedConfig(**asdict(stage_config(config, SelfSupervisedConfig)))  # a copy
    output = Path(output)
    events = step_events(events, progress)
    rank, world, device = _dist_device(cfg.device)
    names = find_images(images)
    if len(names) < 2:
        raise BadInputError(f"{images}: holds {len(names)} image(s); self-supervised training needs at least 2")

    net = build_net(cfg, device)
    opt, sched = make_optimizer(net, cfg)
    spath = state_path(output)
    saved_cfg = json.loads(json.dumps(asdict(cfg), default=str))
    start, log = _resume(spath, saved_cfg, net, opt, sched) if resume else (0, [])
    net.eval()  # frozen BatchNorm statistics, no stochastic depth: two passes give the one-pass gradient
    for prm in net.parameters():
        prm.requires_grad_(True)
    data = ViewDataset(images, names, cfg.size, net.mean, net.std, cfg.seed, cfg.strength, cfg.cache_images)

    for epoch in range(start, cfg.epochs):
        t0 = time.time()
        steps = epoch_order(len(names), cfg.seed, epoch, cfg.tuples_per_step, rank, world)
        loader = torch.utils.data.DataLoader(data, batch_sampler=_StepSampler(steps, epoch),
                                             num_workers=cfg.workers, collate_fn=_collate)
        events("epoch_start", {"epoch": epoch + 1, "epochs": cfg.epochs, "batches": len(steps)})
        losses, nces, ents = [], [], []
        for batch in iterate_quietly(loader):
            if isinstance(batch, str):
                raise BadInputError(batch)
            x, idx = batch
            b = x.shape[0]
            xs = list(x.transpose(0, 1).reshape(VIEWS * b, *x.shape[2:]))  # all first views, then all second
            labels = idx.repeat(VIEWS)
            parts: dict = {}
            opt.zero_grad(set_to_none=True)
            value = batch_backward(net, xs, selfsup_loss(cfg.temperature, cfg.entropy_weight, labels, parts),
                                   cfg.batch_size, device)
            if world > 1:
                _all_reduce_grads(net, world)
            opt.step()
            losses.append(value)
            nces.append(parts["infonce"])
            ents.append(parts["entropy"])
            events("batch", {"loss": value})
        sched.step()
        record = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "infonce": float(np.mean(nces)),
                  "entropy": float(np.mean(ents)), "lr": opt.param_groups[0]["lr"],
                  "seconds": round(time.time() - t0, 2), "images": len(names)}
        if hasattr(net.pool, "p"):
            record["p"] = float(net.pool.p.detach().mean())
        log.append(record)
        if rank == 0:
            _save(output, spath, saved_cfg, images, epoch, net, opt, sched, log)
        events("epoch_end", record)
    if start >= cfg.epochs and not output.exists():
        raise BadInputError(f"{spath}: already trained {start} epochs; raise --epochs to continue")
    return output


def _save(output: Path, spath: Path, saved_cfg: dict, images, epoch: int, net, opt, sched, log: list) -> None:
    from retrievalkit.models import save_model

    state = {"epoch": epoch + 1, "config": saved_cfg, "net": net.state_dict(), "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict(), "log": log}
    with atomic_file(spath) as tmp:
        torch.save(state, tmp)
    save_model(net, output, extra={"train": saved_cfg, "images": str(images), "epoch": epoch + 1, "log": log})
    from retrievalkit.train.loop import log_path

    write_text(log_path(output), json.dumps({"config": saved_cfg, "images": str(images), "epochs": log}, indent=1))
