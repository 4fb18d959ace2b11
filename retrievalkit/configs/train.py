"""Settings of ``rkit train``: the one place its defaults live (kept free of torch for ``rkit --help``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from retrievalkit.errors import UsageError

LOSSES = ("contrastive", "triplet", "recall-k", "joint")
#: settings that may differ when a run is resumed
RESUMABLE = {"epochs", "device", "val_gnd", "val_images", "cache_images", "embed_batch", "workers"}
#: older spellings of saved settings (state files written before the rename)
OLD_KEYS = {"batch_size": "tuples_per_step", "chunk": "batch_size"}


@dataclass
class TrainConfig:
    """Settings of a training run (saved in the model file and the training state).

    ``tuples_per_step`` tuples make one optimiser step; ``batch_size`` is images per forward pass (None: the whole
    step in one pass; else two passes with memory flat in the step size, the same gradient).
    """

    model: str = "efficientnet-lite0"
    pooling: str | None = None
    p: float | None = None
    whitening: str | None = None
    loss: str = "contrastive"
    margin: float | None = None  # default 0.7 (contrastive, joint) / 0.1 (triplet)
    ks: tuple[int, ...] = (1, 2, 4, 8, 16)
    tau1: float = 1.0
    tau2: float = 0.01
    mixup: bool = False
    cls_scale: float | None = None  # joint: cosine-classifier scale; None: AdaCos sqrt(2) ln(C - 1)
    head_lr_mult: float = 1000.0  # joint: learning-rate factor of the class prototypes and the loss weights
    epochs: int = 10
    tuples_per_step: int = 5
    query_size: int = 2000
    pool_size: int = 20000
    num_neg: int = 5
    lr: float = 1e-6
    pool_lr_mult: float = 10.0
    weight_decay: float = 1e-6
    lr_decay: float = 0.01
    size: int | None = 362
    batch_size: int | None = None
    seed: int = 0
    device: str = "cpu"
    val_gnd: str | None = None
    val_images: str | None = None
    cache_images: bool = True
    embed_batch: int = 16
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ks = tuple(int(k) for k in self.ks)
        self.check()

    def check(self) -> None:
        if self.loss not in LOSSES:
            raise UsageError(f"--loss {self.loss!r}: expected one of {', '.join(LOSSES)}")
        for name in ("epochs", "tuples_per_step", "query_size"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be at least 1")
        if self.num_neg < 0 or self.pool_size < 0:
            raise UsageError("--num-neg and --pool-size must be >= 0")
        if self.loss == "triplet" and self.num_neg < 1:
            raise UsageError("--loss triplet needs --num-neg >= 1")
        if self.batch_size is not None and self.batch_size < 1:
            raise UsageError(f"--batch-size {self.batch_size}: must be at least 1")
        if self.lr <= 0:
            raise UsageError(f"--lr {self.lr}: must be positive")
        if self.cls_scale is not None and not self.cls_scale > 0:
            raise UsageError(f"--cls-scale {self.cls_scale}: must be positive")
        if not self.head_lr_mult > 0:
            raise UsageError(f"--head-lr-mult {self.head_lr_mult}: must be positive")
        if self.cls_scale is not None and self.loss != "joint":
            raise UsageError("--cls-scale applies to --loss joint only")
        if self.mixup and self.loss != "recall-k":
            raise UsageError("--mixup (similarity mixup) applies to --loss recall-k only")
        if (self.val_gnd is None) != (self.val_images is None):
            raise UsageError("--val-gnd and --val-images go together")


@dataclass
class SelfSupervisedConfig(TrainConfig):
    """Settings of ``rkit train run IMAGES_DIR --loss infonce``: self-supervised copy-detection training (SSCD,
    Pizzi et al. CVPR 2022) on a folder of images, two augmented views per image.

    ``tuples_per_step`` images (2× as many views) make one optimiser step; ``batch_size`` is views per forward
    pass (two passes when smaller than the step). Loss: InfoNCE with ``temperature`` plus ``entropy_weight`` ×
    the differential-entropy (KoLeo) regulariser; SSCD's τ = 0.05 and λ = 30. The defaults are the small CPU
    recipe (EfficientNet-Lite0 ImageNet init, 160-px views, 20 epochs, Adam lr 1e-4 as in the GPU settings, λ = 0:
    on copydetect-dev SSCD's λ = 30 lowered µAP in this small fine-tuning, λ = 0 raised it; docs/copy-detect.md);
    GPU settings there too.
    """

    loss: str = "infonce"
    temperature: float = 0.05
    entropy_weight: float = 0.0
    epochs: int = 20
    tuples_per_step: int = 32
    batch_size: int | None = 32
    lr: float = 1e-4
    size: int | None = 160
    strength: float = 1.0
    workers: int = 1

    def check(self) -> None:
        if self.loss != "infonce":
            raise UsageError(f"--loss {self.loss!r}: self-supervised training uses --loss infonce")
        for name in ("epochs", "tuples_per_step"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be at least 1")
        if self.tuples_per_step < 2:
            raise UsageError("--tuples-per-step: InfoNCE needs at least 2 images per step")
        if self.batch_size is not None and self.batch_size < 1:
            raise UsageError(f"--batch-size {self.batch_size}: must be at least 1")
        if self.lr <= 0:
            raise UsageError(f"--lr {self.lr}: must be positive")
        if self.temperature <= 0:
            raise UsageError(f"--temperature {self.temperature}: must be > 0")
        if self.entropy_weight < 0:
            raise UsageError(f"--entropy-weight {self.entropy_weight}: must be >= 0")
        if not self.size or self.size < 32:
            raise UsageError(f"--size {self.size}: self-supervised views need a size of at least 32 px")
        if not 0.0 <= self.strength <= 1.0:
            raise UsageError(f"strength {self.strength}: must be in [0, 1]")
        if self.workers < 0:
            raise UsageError(f"--workers {self.workers}: must be >= 0")


@dataclass
class CirtorchImportConfig:
    """Settings of ``rkit train import-cirtorch``: ``val`` keeps the pickle's 'val' split as held-out pairs;
    ``layout`` names the images ``cirtorch`` (ab/cd/ef/CID) or ``flat`` (CID)."""

    val: bool = True
    layout: str = "cirtorch"

    def __post_init__(self) -> None:
        if self.layout not in ("cirtorch", "flat"):
            raise UsageError(f"--layout {self.layout!r}: expected cirtorch or flat")
