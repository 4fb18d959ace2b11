"""``rkit train``: fine-tune backbone + pooling (+ whitening layer) on mined tuples.

Each epoch: pick ``query_size`` random training tuples, re-mine their hard negatives from a random pool of
``pool_size`` images with the current network (one per cluster), then step the optimiser on batches of
``tuples_per_step`` tuples. The network runs in eval mode throughout: BatchNorm statistics stay frozen (their
affine parameters are still learned) and stochastic depth is off, so a step is deterministic and the two-pass
large batch (``batch_size`` images per forward pass) gives exactly the one-pass gradient. GeM's p is learned with
``pool_lr_mult`` times the learning rate. ``--loss joint`` adds a training-only head (class prototypes and two
learned loss weights, see :class:`~retrievalkit.train.losses.JointLoss`) with ``head_lr_mult`` times the learning
rate; it lives in the training state, not in the model file's network. After every epoch the model (``output``,
loadable by ``rkit extract --model``), a resumable training state (``<output stem>.state.pt``) and a JSON log
(``<output stem>.log.json``) are written atomically.

Launched with ``torchrun --nproc-per-node G rkit train ...`` each process takes every G-th tuple of each batch
and the gradients are averaged across processes (all-reduce) before the step; rank 0 writes the files.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from retrievalkit.configs.checks import stage_config
from retrievalkit.configs.train import OLD_KEYS, RESUMABLE, TrainConfig
from retrievalkit.errors import BadInputError, UsageError
from retrievalkit.io.output import atomic_file, config_paths, write_text, writes_output
from retrievalkit.io.tuples import Tuples, read_tuples
from retrievalkit.models._files import load_torch_file
from retrievalkit.train.batch import batch_backward, build_batch, embed, is_pair, make_loss, pair_keys
from retrievalkit.train.data import TrainImages, check_tuple_images, resolve_image_root
from retrievalkit.train.losses import JointLoss
from retrievalkit.train.mining import mine_hard_negatives

# keys of TrainConfig that may change between a run and its --resume


def state_path(output: str | os.PathLike) -> Path:
    output = Path(output)
    return output.with_name(output.stem + ".state.pt")


def log_path(output: str | os.PathLike) -> Path:
    output = Path(output)
    return output.with_name(output.stem + ".log.json")


def build_net(cfg: TrainConfig, device: str):
    """The network to train: a registry name or a model file, plus an optional whitening layer from a file."""
    from retrievalkit.models import load_model, load_whitening_into
    from retrievalkit.whiten.whitening_file import load_whitening

    torch.manual_seed(cfg.seed)  # random-initialised parts (tiny-cnn, ...) depend on the seed only
    net = load_model(cfg.model, device, pooling=cfg.pooling, p=cfg.p)
    if cfg.whitening:
        mean, proj = load_whitening(cfg.whitening)
        load_whitening_into(net, mean, proj)
    return net.to(device)


def make_optimizer(net, cfg: TrainConfig, head: torch.nn.Module | None = None):
    pool = list(net.pool.parameters())
    pool_ids = {id(p) for p in pool}
    rest = [p for p in net.parameters() if id(p) not in pool_ids]
    groups = [{"params": rest, "lr": cfg.lr, "weight_decay": cfg.weight_decay}]
    if pool:
        groups.append({"params": pool, "lr": cfg.lr * cfg.pool_lr_mult, "weight_decay": 0.0})
    if head is not None:  # the joint loss's prototypes and log-variances: no decay (it would pull s_i to 0)
        groups.append({"params": list(head.parameters()), "lr": cfg.lr * cfg.head_lr_mult, "weight_decay": 0.0})
    opt = torch.optim.Adam(groups)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=math.exp(-cfg.lr_decay))
    return opt, sched


def _embed_all(net, images: TrainImages, idx: np.ndarray, device: str, batch: int) -> np.ndarray:
    out = []
    with torch.no_grad():
        for s in range(0, len(idx), batch):
            out.append(embed(net, images.get(idx[s:s + batch]), device).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 1), np.float32)


def epoch_tuples(tup: Tuples, cfg: TrainConfig, epoch: int, net, images: TrainImages, keys: np.ndarray,
                 device: str) -> list[tuple[int, int, list[int]]]:
    """This epoch's (query, positive, negatives) tuples, negatives re-mined with the current network; with a
    fourth element, the tuple's loss weight, when the tuples file has weights (pseudo-labelled tuples)."""
    rng = np.random.default_rng([cfg.seed, epoch])
    n = len(tup.names)
    sel = rng.permutation(len(tup))[:cfg.query_size]
    qs, ps = tup.qidx[sel], tup.pidx[sel]
    ws = None if tup.weight is None else tup.weight[sel]
    if cfg.num_neg == 0:
        negs = [[] for _ in qs]
    elif cfg.pool_size > 0:
        pool = np.sort(rng.permutation(n)[:cfg.pool_size])
        uq, inv = np.unique(qs, return_inverse=True)
        xq = _embed_all(net, images, uq, device, cfg.embed_batch)
        xp = _embed_all(net, images, pool, device, cfg.embed_batch)
        negs_u = mine_hard_negatives(xq, xp, uq, pool, tup.cluster, keys, n, cfg.num_neg)
        negs = [negs_u[i] for i in inv]
    elif tup.nidx is not None:
        negs = [[int(v) for v in row[row >= 0][:cfg.num_neg]] for row in tup.nidx[sel]]
    else:
        raise BadInputError(f"{tup.path}: has no fixed negatives (nidx); mine them with --pool-size > 0")
    if ws is not None:
        return [(int(q), int(p), list(ng), float(w)) for q, p, ng, w in zip(qs, ps, negs, ws)]
    return [(int(q), int(p), list(ng)) for q, p, ng in zip(qs, ps, negs)]


def _average_precision(scores: np.ndarray, pos: np.ndarray) -> float:
    order = np.argsort(-scores, kind="stable")
    hits = pos[order]
    if not hits.any():
        return 0.0
    ranks = np.nonzero(hits)[0] + 1
    return float(np.mean(np.arange(1, len(ranks) + 1) / ranks))


def validate_pairs(tup: Tuples, net, images: TrainImages, keys_all: np.ndarray, device: str,
                   batch: int) -> dict:
    """mAP and recall@1 of the held-out pairs: each held-out query ranks the other held-out images; matching
    pairs (held-out or training) are positives, other images of the query's cluster are left out."""
    n = len(tup.names)
    ids = np.unique(np.concatenate([tup.val_qidx, tup.val_pidx]))
    x = _embed_all(net, images, ids, device, batch)
    sims = x @ x.T
    aps, r1 = [], []
    queries = set(tup.val_qidx.tolist())
    for a, q in enumerate(ids):
        if q not in queries:
            continue
        pos = is_pair(keys_all, np.full(len(ids), q), ids, n)
        keep = (ids != q) & (pos | (tup.cluster[ids] != tup.cluster[q]) | (tup.cluster[ids] < 0))
        if not pos[keep].any():
            continue
        aps.append(_average_precision(sims[a, keep], pos[keep]))
        r1.append(float(pos[keep][np.argmax(sims[a, keep])]))
    return {"val_map": round(100 * float(np.mean(aps)), 2) if aps else None,
            "val_recall1": round(100 * float(np.mean(r1)), 2) if r1 else None}


def validate_gnd(gnd_path: str, images_root: str, net, size: int | None, device: str, batch: int) -> dict:
    """revisitop mAP (Medium, and Easy/Hard when defined) of the current network on a ground truth."""
    from retrievalkit.evaluate.groundtruth import load_gnd
    from retrievalkit.evaluate.retrieval import evaluate_retrieval
    from retrievalkit.extract.inputs import resolve_inputs

    gnd = load_gnd(gnd_path)
    out = {}
    for split in ("database", "queries"):
        names, _ = resolve_inputs(images_root, None, gnd_path, split, use_boxes=False)
        imgs = TrainImages(images_root, names, size, net.mean, net.std, cache=False)
        out[split] = _embed_all(net, imgs, np.arange(len(names)), device, batch)
    ranks = np.argsort(-(out["queries"] @ out["database"].T), axis=1, kind="stable")
    metrics = evaluate_retrieval(ranks, gnd).to_dict()
    return {f"val_gnd_map_{k}": v for k, v in metrics["map"].items() if v is not None}


def _dist_info() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _dist_device(device: str) -> tuple[int, int, str]:
    """(rank, world size, this process's device): under torchrun with CUDA each rank takes its LOCAL_RANK's GPU."""
    rank, world = _dist_info()
    if world > 1 and device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}"
        torch.cuda.set_device(device)
    return rank, world, device


def _all_reduce_grads(params, world: int) -> None:
    import torch.distributed as dist

    for prm in params:
        if prm.grad is None:
            prm.grad = torch.zeros_like(prm)
        dist.all_reduce(prm.grad)
        prm.grad /= world


#: files named by the settings (start model, whitening, validation ground truth): inputs too
_config_files = config_paths("model", "whitening", "val_gnd")


def step_events(events: Callable[[str, dict], None] | None,
                progress: Callable[[int], None] | None) -> Callable[[str, dict], None]:
    """One callback for a training loop: ``events(kind, info)`` as given, and ``progress(1)`` per step."""

    def emit(kind: str, info: dict) -> None:
        if events is not None:
            events(kind, info)
        if progress is not None and kind == "batch":
            progress(1)

    return emit


@writes_output("output", inputs=("tuples", "images", _config_files))
def train(tuples: str | os.PathLike, output: str | os.PathLike, config: TrainConfig | None = None, *,
          images: str | os.PathLike | None = None, resume: bool = False,
          progress: Callable[[int], None] | None = None,
          events: Callable[[str, dict], None] | None = None) -> Path:
    """Fine-tune a retrieval network on a tuples file and write ``output`` (an rkit model file).

    Args:
        tuples: tuples file (``rkit/tuples``).
        output: model file to write after every epoch.
        config: settings (see :class:`TrainConfig`; None: the defaults).
        images: folder the tuples' names are relative to (default: the file's ``image_root``).
        resume: continue from ``<output stem>.state.pt`` (same settings; ``epochs`` may grow).
        progress: advances by 1 per optimiser step.
        events: callback ``(kind, info)``: ``epoch_start`` {epoch, batches}, ``batch`` {loss},
            ``epoch_end`` (the epoch's log record).
    Returns:
        the path of the model file.
    """
    cfg = TrainConfig(**asdict(stage_config(config, TrainConfig)))  # a copy: the run never changes the caller's
    cfg.ks = tuple(int(k) for k in cfg.ks)
    cfg.check()
    output = Path(output)
    events = step_events(events, progress)
    rank, world, device = _dist_device(cfg.device)

    tup = read_tuples(tuples)
    if len(tup) == 0:
        raise BadInputError(f"{tuples}: holds no training pairs")
    root = resolve_image_root(tup, images)
    check_tuple_images(tup, root)
    n = len(tup.names)
    keys = pair_keys(tup.qidx, tup.pidx, n)
    keys_all = keys
    if tup.val_qidx is not None and len(tup.val_qidx):
        keys_all = np.union1d(keys, pair_keys(tup.val_qidx, tup.val_pidx, n))

    net = build_net(cfg, device)
    imgs = TrainImages(root, tup.names, cfg.size, net.mean, net.std, cache=cfg.cache_images)
    net.eval()  # frozen BatchNorm statistics, no stochastic depth: see the module docstring
    labels, head = None, None
    if cfg.loss == "joint":
        labels, head = build_joint_head(tup, cfg, net, imgs, device, imprint=not resume)
    opt, sched = make_optimizer(net, cfg, head)
    spath = state_path(output)
    # plain JSON types only: the state file must load with weights_only=True (a Path would be refused)
    saved_cfg = json.loads(json.dumps(asdict(cfg), default=str))
    start, log = _resume(spath, saved_cfg, net, opt, sched, head) if resume else (0, [])

    for prm in net.parameters():
        prm.requires_grad_(True)

    for epoch in range(start, cfg.epochs):
        record = _train_epoch(epoch, tup, cfg, net, opt, imgs, keys, device, rank, world, events, head, labels)
        sched.step()
        record["lr"] = opt.param_groups[0]["lr"]
        if hasattr(net.pool, "p"):
            record["p"] = float(net.pool.p.detach().mean())
        if head is not None:
            record["s_rank"], record["s_cls"] = (round(float(v), 5) for v in head.log_vars.detach())
        if tup.val_qidx is not None and len(tup.val_qidx):
            record.update(validate_pairs(tup, net, imgs, keys_all, device, cfg.embed_batch))
        if cfg.val_gnd:
            record.update(validate_gnd(cfg.val_gnd, cfg.val_images, net, cfg.size, device, cfg.embed_batch))
        log.append(record)
        if rank == 0:
            _save_epoch(output, spath, saved_cfg, tuples, epoch, net, opt, sched, log, head)
        events("epoch_end", record)
    if start >= cfg.epochs and not output.exists():
        raise BadInputError(f"{spath}: already trained {start} epochs; raise --epochs to continue")
    return output


def landmark_classes(cluster: np.ndarray) -> tuple[np.ndarray, int]:
    """Class index (0..C-1) of every image from its cluster id (-1 stays -1: no class), and C."""
    cluster = np.asarray(cluster, np.int64)
    ids, inv = np.unique(cluster, return_inverse=True)
    known = ids >= 0
    index = np.where(known, np.cumsum(known) - 1, -1)
    return index[inv.reshape(-1)].astype(np.int64), int(known.sum())


#: images per class embedded to imprint its prototype at the start of a --loss joint run (a cost cap)
IMPRINT_PER_CLASS = 10


def build_joint_head(tup: Tuples, cfg: TrainConfig, net, images: TrainImages, device: str,
                     imprint: bool = True) -> tuple[np.ndarray, JointLoss]:
    """The labels (class per image of the tuples file) and the :class:`JointLoss` head of a ``--loss joint`` run.

    The prototypes are imprinted from up to ``IMPRINT_PER_CLASS`` random images per class, embedded by the
    starting network (skipped on --resume: the state holds the trained head).
    """
    labels, num_classes = landmark_classes(tup.cluster)
    if num_classes < 2:
        raise BadInputError(f"{tup.path}: --loss joint needs images of at least 2 clusters (landmark classes), "
                            f"found {num_classes}; use --loss contrastive")
    rng = np.random.default_rng([cfg.seed, 7])
    if imprint:
        pick = np.sort(np.concatenate([rng.permutation(np.nonzero(labels == c)[0])[:IMPRINT_PER_CLASS]
                                       for c in range(num_classes)]))
    else:
        pick = np.nonzero(labels >= 0)[0][:1]  # one image: the embedding size only
    x = torch.from_numpy(_embed_all(net, images, pick, device, cfg.embed_batch))
    head = JointLoss(num_classes, x.shape[1], cfg.cls_scale, 0.7 if cfg.margin is None else cfg.margin)
    if imprint:
        head.imprint(x, labels[pick])
    return labels, head.to(device)


def _resume(spath: Path, saved_cfg: dict, net, opt, sched, head: JointLoss | None = None) -> tuple[int, list]:
    """Load the training state of an interrupted run into net/optimizer/scheduler: (epochs done, log)."""
    if not spath.exists():
        raise BadInputError(f"{spath}: no training state to resume from; drop --resume to start a new run")
    state = load_torch_file(spath, what="training state")  # weights_only: a state file cannot run code
    if not isinstance(state, dict) or not {"config", "net", "optimizer", "scheduler", "epoch", "log"} <= set(state):
        raise BadInputError(f"{spath}: not an rkit training state; drop --resume to start a new run")
    saved = dict(state["config"])
    if "tuples_per_step" not in saved:  # written before batch_size/chunk were renamed
        saved = {OLD_KEYS.get(k, k): v for k, v in saved.items()}
    defaults = json.loads(json.dumps(asdict(TrainConfig()), default=str))  # settings added after the state was written
    diff = sorted(k for k in saved_cfg if k not in RESUMABLE and saved.get(k, defaults.get(k)) != saved_cfg[k])
    if diff:
        raise UsageError(f"{spath}: was made with other settings ({', '.join(diff)}); resume with the same "
                         "options (only --epochs may change) or drop --resume")
    net.load_state_dict(state["net"])
    if head is not None:
        if "joint" not in state or state["joint"]["prototypes"].shape != head.prototypes.shape:
            raise BadInputError(f"{spath}: holds no joint-loss head for these tuples' classes; drop --resume")
        head.load_state_dict(state["joint"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    return int(state["epoch"]), list(state["log"])


def _train_epoch(epoch: int, tup: Tuples, cfg: TrainConfig, net, opt, imgs: TrainImages, keys: np.ndarray,
                 device: str, rank: int, world: int, events: Callable[[str, dict], None],
                 head: JointLoss | None = None, labels: np.ndarray | None = None) -> dict:
    """One epoch: re-mine the tuples, one optimiser step per batch; returns the epoch's log record
    (without the learning rate and validation, added by the caller)."""
    t0 = time.time()
    n = len(tup.names)
    tuples_e = epoch_tuples(tup, cfg, epoch, net, imgs, keys, device)
    batches = [tuples_e[s:s + cfg.tuples_per_step] for s in range(0, len(tuples_e), cfg.tuples_per_step)]
    events("epoch_start", {"epoch": epoch + 1, "epochs": cfg.epochs, "batches": len(batches)})
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
    loss_fn = make_loss(cfg.loss, cfg.margin, cfg.ks, cfg.tau1, cfg.tau2, cfg.mixup, generator=gen, joint=head,
                        labels=labels)
    trained = list(net.parameters()) + ([] if head is None else list(head.parameters()))
    losses, terms = [], []
    for bt in batches:
        bt = bt[rank::world] or bt[:1]
        batch = build_batch(bt, tup.cluster, keys, n)
        opt.zero_grad(set_to_none=True)
        if cfg.loss == "recall-k" and not batch.pos[batch.qrows].any():
            continue
        value = batch_backward(net, imgs.get(batch.images), lambda e, b=batch, f=loss_fn: f(e, b),
                               cfg.batch_size, device)
        if world > 1:
            _all_reduce_grads(trained, world)
        opt.step()
        losses.append(value)
        if head is not None:
            terms.append(head.last_terms)
        events("batch", {"loss": value})
    record = {"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else None,
              "lr": None, "seconds": round(time.time() - t0, 2), "tuples": len(tuples_e),
              "negatives_per_tuple": float(np.mean([len(t[2]) for t in tuples_e])) if tuples_e else 0.0}
    if head is not None:  # the two unweighted terms (the contrastive one compares with --loss contrastive)
        rank_t = [t[0] for t in terms]
        cls_t = [t[1] for t in terms if t[1] is not None]
        record["loss_rank"] = float(np.mean(rank_t)) if rank_t else None
        record["loss_cls"] = float(np.mean(cls_t)) if cls_t else None
    return record


def _save_epoch(output: Path, spath: Path, saved_cfg: dict, tuples, epoch: int, net, opt, sched,
                log: list, head: JointLoss | None = None) -> None:
    """Write the training state (for --resume), the model file and the JSON log after an epoch."""
    from retrievalkit.models import save_model

    state = {"epoch": epoch + 1, "config": saved_cfg, "net": net.state_dict(), "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict(), "log": log}
    extra = {"train": saved_cfg, "tuples": str(tuples), "epoch": epoch + 1, "log": log}
    if head is not None:  # the head stays out of the network; its learned weights are recorded with the model
        state["joint"] = {k: v.detach().cpu() for k, v in head.state_dict().items()}
        extra["joint"] = {"log_vars": [float(v) for v in head.log_vars.detach()], "classes": head.prototypes.shape[0],
                          "cls_scale": head.scale}
    with atomic_file(spath) as tmp:
        torch.save(state, tmp)
    save_model(net, output, extra=extra)
    write_text(log_path(output), json.dumps({"config": saved_cfg, "tuples": str(tuples), "epochs": log}, indent=1))


def parse_ks(text: str | Sequence[int]) -> tuple[int, ...]:
    if isinstance(text, str):
        try:
            ks = tuple(int(t) for t in text.split(",") if t.strip())
        except ValueError:
            raise UsageError(f"--ks {text!r}: expected comma-separated integers, e.g. 1,2,4,8,16") from None
    else:
        ks = tuple(int(k) for k in text)
    if not ks or min(ks) < 1:
        raise UsageError(f"--ks {text!r}: expected positive integers")
    return ks
