"""The settings of a training run, and the one place their defaults live.

``styledistill train`` reads its flag defaults from here (cli/train.py), so a default
changes in one place. Torch-free, so building the CLI's ``--help`` stays cheap.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

SCHEDULES = ("cosine", "step", "constant")
AMP_MODES = ("bf16", "fp16", "none")
#: Networks of the feature loss terms (the keys of ``losses.LOSS_NETWORKS``, kept here
#: torch-free for the CLI; a test checks they agree), or "auto".
LOSS_NETWORK_CHOICES = ("auto", "vgg19", "mobilenet_v2")
#: (lr, backbone_lr) when they are left None. With ``backbone_weights``: the paper's. From
#: random backbones: measured on the earlier random-init sttr-small (1e-4 barely moved in
#: a CPU budget, 3e-3 diverged).
PRETRAINED_LRS = (1e-4, 1e-5)
RANDOM_INIT_LRS = (1e-3, 1.5e-4)


@dataclass
class TrainConfig:
    """Every setting of a training run.

    A field ``some_name`` is the flag ``--some-name`` of ``styledistill train`` unless its
    comment names another flag or says *API only*.
    """

    data: str
    out: str
    preset: str = "sttr-small"
    #: Start from a saved student (a folder or a pretrained name): its architecture and
    #: weights, fine-tuned on ``data``. ``preset`` and ``model_overrides`` do not apply.
    init: str | None = None
    #: STTRConfig fields that replace the preset's (flag: repeated --model-option KEY=VALUE).
    model_overrides: dict[str, Any] = field(default_factory=dict)
    steps: int = 20_000
    batch_size: int = 8
    grad_accum: int = 1
    #: None: PRETRAINED_LRS with ``backbone_weights``, else RANDOM_INIT_LRS.
    lr: float | None = None
    backbone_lr: float | None = None
    weight_decay: float = 1e-4
    warmup: int = 500
    schedule: str = "cosine"
    #: Cosine decays to lr * min_lr_ratio (API only).
    min_lr_ratio: float = 0.1
    clip: float = 0.1
    size: int = 256
    #: Random crops and flips of the training pairs; off: whole images, as the teacher saw
    #: them (API only).
    augment: bool = True
    #: The random crops' side as a share of the teacher image's side (min, max), resized to
    #: ``size`` (never below ``size`` pixels). ``[0.5, 0.5]`` with ``size`` 256 on a 512 px
    #: dataset: crops at the teacher's own scale, so texture keeps its size.
    crop_scale: list[float] = field(default_factory=lambda: [0.5, 1.0])
    resume: bool = False
    #: Network of the feature losses: "auto" (VGG19 when torchvision's ImageNet file is in
    #: torch's hub cache, as the STTR paper; else MobileNetV2, whose file ships offline),
    #: "vgg19" or "mobilenet_v2" (--vgg-weights also sets "vgg19").
    loss_network: str = "auto"
    #: "imagenet" (torchvision's file from torch's hub cache) or a local weights file
    #: (--loss-network-weights, or --vgg-weights).
    loss_network_weights: str = "imagenet"
    #: Tokenizer backbones: "imagenet" (torchvision's file), a local file, or None (random).
    backbone_weights: str | None = "imagenet"
    #: The loss mix of the StyleID recipe (``styledistill.recipes``, chosen on
    #: bench/styleid_real.py's split): pixel L1, plus the LPIPS-style distance
    #: (unit-normalised features) and the per-image feature mean/std distance to the
    #: teacher's output on the loss network (losses.py). ``perceptual`` (feature MSE) and
    #: ``texture`` (mean/std over tiles) are the older texture-teacher terms, off.
    pixel_weight: float = 1.0
    perceptual_weight: float = 0.0
    texture_weight: float = 0.0
    #: The texture term's statistics over an N x N grid of tiles of each feature map
    #: (1: the whole map).
    texture_tiles: int = 2
    feature_weight: float = 1.0
    stats_weight: float = 1.0
    content_weight: float = 0.0
    style_weight: float = 0.0
    ema: float = 0.999
    amp: str = "bf16"
    log_every: int = 10
    eval_every: int = 500
    save_every: int = 1000
    keep: int = 3
    val_fraction: float = 0.1
    #: Validate on this dataset's pairs instead of holding out ``val_fraction`` of ``data``
    #: (then every pair of ``data`` trains); groups still say what was seen in training.
    val_data: str | None = None
    #: Most validation pairs scored per evaluation (evenly spread over the held-out set).
    val_max_pairs: int = 64
    #: Training batches used to recompute BatchNorm statistics before each evaluation
    #: (0: off) (API only).
    bn_recalibration_batches: int = 8
    #: Rows in the sample grid (API only).
    grid_rows: int = 4
    num_workers: int = 2
    seed: int = 0
    device: str | None = None
    #: Largest micro-batch to attempt, in pixels (batch_size x size x size); None: what
    #: the device's free memory holds, estimated (styledistill.budget).
    max_pixels: int | None = None
    max_minutes: float | None = None
    #: This many NaN/inf steps in a row stop the run (API only).
    max_bad_steps: int = 5
    #: Random loss-network weights (tests only; meaningless otherwise, and it warns) (API only).
    allow_random_loss_network: bool = False
    #: A progress bar (flag: --no-progress turns it off).
    progress: bool = True
    #: TensorBoard events beside log.jsonl (flag: --no-tensorboard turns them off).
    tensorboard: bool = True

    def __post_init__(self) -> None:
        if self.backbone_weights in ("random", "none"):
            self.backbone_weights = None
        trained = self.backbone_weights is not None or self.init is not None
        lr, backbone_lr = PRETRAINED_LRS if trained else RANDOM_INIT_LRS
        if self.lr is None:
            self.lr = lr
        if self.backbone_lr is None:
            self.backbone_lr = backbone_lr

    def validate(self) -> None:
        for spec in dataclasses.fields(self):  # NaN/inf compare False and pass range checks
            value = getattr(self, spec.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(
                    f"{spec.name.replace('_', '-')} must be a finite number, got {value}"
                )

        def positive(name: str) -> None:
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}"
                )

        for name in (
            "steps",
            "batch_size",
            "grad_accum",
            "texture_tiles",
            "log_every",
            "eval_every",
            "save_every",
            "keep",
        ):
            positive(name)
        if self.size < 32 or self.size % 32:
            raise ConfigError(f"size must be a multiple of 32 and >= 32, got {self.size}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule {self.schedule!r}: choose from {', '.join(SCHEDULES)}")
        if self.loss_network not in LOSS_NETWORK_CHOICES:
            raise ConfigError(
                f"loss_network {self.loss_network!r}: choose from {', '.join(LOSS_NETWORK_CHOICES)}"
            )
        if self.amp not in AMP_MODES:
            raise ConfigError(f"amp {self.amp!r}: choose from {', '.join(AMP_MODES)}")
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"ema decay must be in [0, 1), got {self.ema}")
        for name in ("lr", "backbone_lr", "weight_decay", "clip"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(
                    f"{name.replace('_', '-')} must be a finite number >= 0, got {value}"
                )
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.warmup < 0:
            raise ConfigError(f"warmup must be >= 0, got {self.warmup}")
        low, high = [*list(self.crop_scale), 0.0, 0.0][:2]
        if len(self.crop_scale) != 2 or not 0.0 < low <= high <= 1.0:
            raise ConfigError(
                f"crop-scale must be two shares 0 < MIN <= MAX <= 1, got {self.crop_scale}"
            )
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val-fraction must be in (0, 1), got {self.val_fraction}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ConfigError(f"max-minutes must be > 0, got {self.max_minutes}")
        if self.num_workers < 0:
            raise ConfigError(f"num-workers must be >= 0, got {self.num_workers}")
        if self.max_bad_steps < 1:
            raise ConfigError(f"max-bad-steps must be >= 1, got {self.max_bad_steps}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def field_default(name: str) -> Any:
    """The default of ``TrainConfig.name`` (a fresh copy for mutable ones)."""
    for spec in dataclasses.fields(TrainConfig):
        if spec.name == name:
            if spec.default_factory is not dataclasses.MISSING:
                return spec.default_factory()
            if spec.default is dataclasses.MISSING:
                raise KeyError(f"TrainConfig.{name} has no default")
            return spec.default
    raise KeyError(f"TrainConfig has no field {name!r}")
