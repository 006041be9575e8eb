"""Training loop: distil a teacher dataset into the STTR student (docs/architecture.md).

One readable loop in the nanoGPT manner, no framework: ``train(TrainConfig(...))``.

- Single process, or DDP when started by ``torchrun`` (RANK/WORLD_SIZE/LOCAL_RANK in the
  environment): NCCL on GPUs, Gloo on CPUs; each rank reads its slice of every epoch.
- AdamW with a lower learning rate for the ResNet backbones, linear warmup then cosine,
  step or constant decay (the learning rate is a pure function of the step), gradient
  clipping, gradient accumulation, AMP (bf16, or fp16 with a GradScaler) on GPUs, and an
  EMA of the weights that is used for validation and for the final student.
- Validation pairs are held out by content and by style (``dataset.split_keys``), so the
  reported PSNR/SSIM to the teacher include styles the student never saw.
- A checkpoint is a resume point: model, EMA, optimizer, GradScaler, step, every rank's
  RNG states and the position in the data order. It is written to a temporary folder and
  renamed into place, so a crash never leaves a half-written checkpoint.
- Data order is a pure function of (seed, epoch) and each sample's random crop/flip a
  pure function of (seed, epoch, index), so ``resume`` reproduces an uninterrupted run.
- A NaN/inf loss (or gradient) skips the optimizer update; ``max_bad_steps`` of them in a
  row stop the run with :class:`TrainingDivergedError` and no new checkpoint.

Run folder layout::

    RUN_DIR/log.jsonl            one JSON line per log interval and per validation
    RUN_DIR/train_config.json    the settings of the latest start
    RUN_DIR/samples/step_XXXXXXX.png   content | style | teacher | student grids
    RUN_DIR/tensorboard/         TensorBoard events (when tensorboard is installed)
    RUN_DIR/checkpoints/step_XXXXXXX/  the last ``keep`` resume points
    RUN_DIR/checkpoints/best/    the resume point with the best validation PSNR
    RUN_DIR/student/             the EMA student (``STTR.save_pretrained``)
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import CheckpointError, ConfigError, StyledistillError
from .plumbing import make_shareable

__all__ = [
    "CHECKPOINT_DIR",
    "TrainConfig",
    "TrainingDivergedError",
    "evaluate_pairs",
    "histogram_matched",
    "latest_checkpoint",
    "load_checkpoint",
    "lr_factor",
    "psnr",
    "ssim",
    "train",
]

CHECKPOINT_DIR = "checkpoints"
BEST_NAME = "best"
STUDENT_DIR = "student"
LOG_FILE = "log.jsonl"
_COMPLETE_MARKER = "trainer.json"  # written last inside a checkpoint folder
SCHEDULES = ("cosine", "step", "constant")
AMP_MODES = ("bf16", "fp16", "none")


class TrainingDivergedError(StyledistillError):
    """The loss stayed NaN/inf for too many steps in a row."""


# --------------------------------------------------------------------------- config


@dataclass
class TrainConfig:
    """Every setting of a training run (the CLI flags map one to one)."""

    data: str
    out: str
    preset: str = "sttr-small"
    #: STTRConfig fields that replace the preset's (e.g. tiny models in tests).
    model_overrides: dict[str, Any] = field(default_factory=dict)
    steps: int = 20_000
    batch_size: int = 8
    grad_accum: int = 1
    #: None: the paper's 1e-4 (backbones 1e-5) with ``backbone_weights``; from random
    #: backbones 1e-3 (backbones 1.5e-4), measured on the earlier random-init sttr-small
    #: (1e-4 barely moved in a CPU budget, 3e-3 diverged).
    lr: float | None = None
    backbone_lr: float | None = None
    weight_decay: float = 1e-4
    warmup: int = 500
    schedule: str = "cosine"
    #: Cosine decays to lr * min_lr_ratio.
    min_lr_ratio: float = 0.1
    clip: float = 0.1
    size: int = 256
    #: Random crops and flips of the training pairs (off: whole images, as the teacher saw them).
    augment: bool = True
    resume: bool = False
    #: Network of the feature losses: "auto" (VGG19 when torchvision's ImageNet file is in
    #: torch's hub cache, as the STTR paper; else MobileNetV2, whose file ships offline),
    #: "vgg19" or "mobilenet_v2".
    loss_network: str = "auto"
    #: "imagenet" (torchvision's file from torch's hub cache) or a local weights file.
    loss_network_weights: str = "imagenet"
    #: Tokenizer backbones: "imagenet" (torchvision's file), a local file, or None (random).
    backbone_weights: str | None = "imagenet"
    #: The loss mix picked by bench/distill_quality.py for sttr-small: pixel L1 prefers a
    #: blur of the teacher to the teacher itself, so it stays low and the texture term
    #: (feature mean/std of the student vs the teacher's output) carries the texture.
    pixel_weight: float = 0.25
    perceptual_weight: float = 0.2
    texture_weight: float = 2.0
    content_weight: float = 0.0
    style_weight: float = 0.0
    ema: float = 0.999
    amp: str = "bf16"
    log_every: int = 10
    eval_every: int = 500
    save_every: int = 1000
    keep: int = 3
    val_fraction: float = 0.1
    #: Most validation pairs scored per evaluation (evenly spread over the held-out set).
    val_max_pairs: int = 64
    #: Training batches used to recompute BatchNorm statistics before each evaluation (0: off).
    bn_recalibration_batches: int = 8
    #: Rows in the sample grid.
    grid_rows: int = 4
    num_workers: int = 2
    seed: int = 0
    device: str | None = None
    max_minutes: float | None = None
    #: This many NaN/inf steps in a row stop the run.
    max_bad_steps: int = 5
    #: Random loss-network weights (tests only; meaningless otherwise, and it warns).
    allow_random_loss_network: bool = False
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        if self.backbone_weights in ("random", "none"):
            self.backbone_weights = None
        pretrained = self.backbone_weights is not None
        if self.lr is None:
            self.lr = 1e-4 if pretrained else 1e-3
        if self.backbone_lr is None:
            self.backbone_lr = 1e-5 if pretrained else 1.5e-4

    def validate(self) -> None:
        def positive(name: str) -> None:
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}"
                )

        for name in (
            "steps",
            "batch_size",
            "grad_accum",
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


# --------------------------------------------------------------------------- schedule


def lr_factor(
    step: int, *, total: int, warmup: int, schedule: str, min_ratio: float = 0.1
) -> float:
    """Multiplier of the base learning rates at optimizer step ``step`` (0-based).

    Linear warmup over ``warmup`` steps, then ``cosine`` (down to ``min_ratio``),
    ``step`` (x0.1 at 2/3 of the run, x0.01 at 9/10) or ``constant``.
    """
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, max(0.0, (step - warmup) / max(1, total - warmup)))
    if schedule == "cosine":
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "step":
        return 1.0 if progress < 2 / 3 else 0.1 if progress < 0.9 else 0.01
    raise ConfigError(f"schedule {schedule!r}: choose from {', '.join(SCHEDULES)}")


# --------------------------------------------------------------------------- metrics


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB (``metrics.fidelity``), capped at 100 dB so logs stay finite."""
    from .metrics.fidelity import psnr as fidelity_psnr

    return fidelity_psnr(prediction, target).clamp(max=100.0).float()


def ssim(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of ``[B,3,H,W]`` images in [0, 1] (``metrics.fidelity``)."""
    from .metrics.fidelity import ssim as fidelity_ssim

    return fidelity_ssim(prediction, target).float()


def histogram_matched(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Baseline for a batch: ``metrics.distillation.histogram_matched`` per image."""
    from .metrics.distillation import histogram_matched as match_one

    return torch.stack([match_one(c.cpu(), s.cpu()) for c, s in zip(content, style)])


# --------------------------------------------------------------------------- distributed


@dataclass
class _Dist:
    """Where this process sits in a torchrun job (world 1 when run directly)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    enabled: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def any(self, flags: Sequence[bool], device: torch.device) -> list[bool]:
        """Each flag OR-ed over all ranks (one small all-reduce)."""
        tensor = torch.tensor([float(f) for f in flags], device=device)
        if self.enabled:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        return [bool(v) for v in tensor.tolist()]

    def gather(self, obj: Any) -> list[Any]:
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out


def _setup_distributed(device_name: str | None) -> tuple[_Dist, torch.device]:
    """Join the torchrun process group when RANK/WORLD_SIZE are set; pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if "RANK" not in os.environ or world <= 1:
        from .runtime import resolve_device

        return _Dist(), resolve_device(device_name)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = torch.cuda.is_available() and (device_name is None or device_name.startswith("cuda"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=backend, rank=rank, world_size=world)
    return _Dist(rank, local_rank, world, True), device


# --------------------------------------------------------------------------- RNG


def _rng_state() -> dict[str, Any]:
    """This process's RNG states, in a form ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        (
            n["kind"],
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError, IndexError):
            torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Run a block with python/numpy/torch(CPU) RNGs seeded, then restore the old states."""
    py_state, np_state, torch_state = (
        random.getstate(),
        np.random.get_state(),
        torch.get_rng_state(),
    )
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)


# --------------------------------------------------------------------------- data


class _EpochSeeded(torch.utils.data.Dataset):
    """Makes each item's random augmentation a function of (seed, epoch, index).

    Then the data a step sees does not depend on worker count or on where a resumed
    run restarted inside an epoch.
    """

    def __init__(self, base: torch.utils.data.Dataset, seed: int) -> None:
        self.base = base
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        digest = hashlib.blake2b(f"{self.seed}:{self.epoch}:{index}".encode(), digest_size=8)
        with _seeded(int.from_bytes(digest.digest(), "big") & 0x7FFF_FFFF_FFFF):
            return self.base[index]


def _epoch_indices(n: int, *, seed: int, epoch: int, rank: int, world: int) -> list[int]:
    """This rank's sample order for an epoch: DistributedSampler's order (shuffle, drop tail)."""
    sampler = torch.utils.data.DistributedSampler(
        range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    return list(sampler)


def _batches(
    dataset: _EpochSeeded,
    *,
    start_micro: int,
    per_epoch: int,
    config: TrainConfig,
    dist: _Dist,
    pin_memory: bool,
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Micro-batches forever, starting at global micro-batch ``start_micro``."""
    micro = start_micro
    while True:
        epoch, skip = divmod(micro, per_epoch)
        dataset.epoch = epoch
        indices = _epoch_indices(
            len(dataset), seed=config.seed, epoch=epoch, rank=dist.rank, world=dist.world_size
        )
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=config.batch_size,
            sampler=indices[skip * config.batch_size :],
            num_workers=config.num_workers,
            drop_last=True,
            pin_memory=pin_memory,
            generator=torch.Generator().manual_seed(config.seed + epoch),
        )
        for batch in loader:
            yield batch
            micro += 1


def _split(
    data: Path, val_fraction: float, seed: int
) -> tuple[list[str], list[str], dict[str, str]]:
    """(train keys, val keys, val key -> group) with groups by what the student has seen."""
    from .dataset.reader import read_manifest, split_keys

    records = read_manifest(data)
    if not records:
        raise ConfigError(f"{data}: the dataset has no finished pairs")
    train_keys, val_keys = split_keys(records, val_fraction, seed=seed)
    if not train_keys or not val_keys:
        raise ConfigError(
            f"{data}: {len(records)} pairs cannot be split into training and validation "
            f"with val-fraction {val_fraction}; make a dataset with more contents and styles"
        )
    by_key = {r["key"]: r for r in records}

    def ids(record: dict[str, Any]) -> tuple[str, str]:
        return (
            str(record.get("content_rel") or record.get("content")),
            str(record.get("style_rel") or record.get("style")),
        )

    seen_contents = {ids(by_key[k])[0] for k in train_keys}
    seen_styles = {ids(by_key[k])[1] for k in train_keys}
    groups = {}
    for key in val_keys:
        content, style = ids(by_key[key])
        new_content, new_style = content not in seen_contents, style not in seen_styles
        groups[key] = (
            "unseen_both"
            if new_content and new_style
            else "unseen_style"
            if new_style
            else "unseen_content"
        )
    return train_keys, val_keys, groups


def _spread(items: Sequence[str], count: int) -> list[str]:
    """At most ``count`` items evenly spread over ``items`` (deterministic)."""
    if len(items) <= count:
        return list(items)
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


# --------------------------------------------------------------------------- model helpers


class EMA:
    """Exponential moving average of a model's weights (and float buffers).

    The decay ramps up as ``min(decay, (1 + n) / (10 + n))`` so short runs are not
    dominated by the random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        ema_state = self.model.state_dict()
        for name, value in model.state_dict().items():
            target = ema_state[name]
            if target.dtype.is_floating_point:
                target.lerp_(value.detach().to(target.dtype), 1.0 - decay)
            else:
                target.copy_(value)


@torch.no_grad()
def init_backbone_statistics(model: nn.Module, content: torch.Tensor, style: torch.Tensor) -> None:
    """Give randomly initialised backbones the statistics of real data (data-dependent init).

    The tokenizers' ResNets use *frozen* BatchNorm. With pretrained weights its statistics
    come with the weights; with random weights they are the identity, so nothing
    normalizes the activations and the content signal fades to ~1e-6 by layer 3 (the
    student then only learns a mean colour). One forward pass sets every frozen norm's
    mean/variance to those of its input on a real batch, layer by layer (each hook sees
    the already-normalized output of the layers before it), like BatchNorm at init. The
    variance has a floor of 0.01 so near-constant channels are not blown up.
    """
    from torchvision.ops.misc import FrozenBatchNorm2d

    def use_input_statistics(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0].float()
        module.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        # a floor keeps near-dead channels from being amplified more than 10x (whose
        # gradients, compounded over layers, overflow)
        module.running_var.copy_(x.var(dim=(0, 2, 3), unbiased=False).clamp_min(0.01))

    style_input, _ = model.prepare_style(style)  # type: ignore[operator]
    for tokenizer, images in (
        (model.content_tokenizer, content),
        (model.style_tokenizer, style_input),
    ):
        norms = [m for m in tokenizer.backbone.modules() if isinstance(m, FrozenBatchNorm2d)]
        hooks = [m.register_forward_pre_hook(use_input_statistics) for m in norms]
        try:
            tokenizer.backbone(model._normalize(images))  # type: ignore[operator]
        finally:
            for hook in hooks:
                hook.remove()


@torch.no_grad()
def recalibrated_copy(
    model: nn.Module, batches: Sequence[tuple[torch.Tensor, ...]], device: torch.device
) -> nn.Module:
    """A copy of ``model`` whose trainable BatchNorm statistics are recomputed on ``batches``.

    Running averages lag behind fast-moving weights, and an EMA model's averaged statistics
    do not belong to its averaged weights; either can wreck eval-mode outputs early in
    training. Recomputing them (a cumulative average over a few training batches) is the
    standard fix. The training model is untouched, so resume stays exact.
    """
    copy_ = copy.deepcopy(model).eval()
    norms = [m for m in copy_.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or not batches:
        return copy_
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
        norm.train()
    for content, style, _target in batches:
        copy_(content.to(device), style.to(device))
    for norm in norms:
        norm.eval()
    return copy_


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _param_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """Four AdamW groups: backbone/other x decay/no-decay (biases and norms do not decay)."""
    backbone = {id(p) for p in model.backbone_parameters()}  # type: ignore[operator]
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        part = "backbone" if id(p) in backbone else "other"
        groups.setdefault((part, p.ndim >= 2), []).append(p)
    out = []
    for (part, decay), params in sorted(groups.items()):
        out.append(
            {
                "params": params,
                "name": f"{part}{'' if decay else '_no_decay'}",
                "base_lr": config.backbone_lr if part == "backbone" else config.lr,
                "lr": config.backbone_lr if part == "backbone" else config.lr,
                "weight_decay": config.weight_decay if decay else 0.0,
            }
        )
    return out


def _state_hash(module: nn.Module) -> str:
    """SHA-256 of every tensor in a state dict (to check that DDP ranks agree)."""
    digest = hashlib.sha256()
    for name, value in module.state_dict().items():
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _all_finite(module: nn.Module) -> bool:
    return all(
        torch.isfinite(p).all() for p in module.state_dict().values() if p.dtype.is_floating_point
    )


# --------------------------------------------------------------------------- checkpoints


def _tensors_for_safetensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    return _tensors_for_safetensors(tensors), {
        "param_groups": state["param_groups"],
        "scalars": scalars,
    }


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for index, values in rest["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": rest["param_groups"]}


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_checkpoint_files(folder: Path, payload: dict[str, Any]) -> None:
    """Write every file of a checkpoint into ``folder`` (a temporary folder)."""
    from safetensors.torch import save_file

    save_file(payload["model"], str(folder / "model.safetensors"))
    if payload.get("ema") is not None:
        save_file(payload["ema"], str(folder / "ema.safetensors"))
    save_file(payload["optimizer_tensors"], str(folder / "optimizer.safetensors"))
    torch.save(payload["state"], folder / "training_state.pt")
    for name in os.listdir(folder):
        make_shareable(folder / name)  # safetensors writes 0600; use open()'s mode
        with open(folder / name, "rb") as fh:
            os.fsync(fh.fileno())
    marker = folder / _COMPLETE_MARKER
    marker.write_text(json.dumps(payload["info"], indent=2, default=str) + "\n")
    with open(marker, "rb") as fh:
        os.fsync(fh.fileno())


def save_checkpoint(destination: Path, payload: dict[str, Any]) -> Path:
    """Write a checkpoint folder atomically: temp folder, fsync, then rename into place."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(
        tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
    )
    try:
        make_shareable(tmp, directory=True)  # mkdtemp made it private (0700)
        _write_checkpoint_files(tmp, payload)
        if destination.exists():
            old = destination.with_name(f".{destination.name}.old-{os.getpid()}")
            os.rename(destination, old)
            os.rename(tmp, destination)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, destination)
        _fsync_dir(destination.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return destination


def _checkpoint_step(path: Path) -> int | None:
    if not path.name.startswith("step_"):
        return None
    try:
        return int(path.name[len("step_") :])
    except ValueError:
        return None


def _step_checkpoints(run_dir: Path) -> list[Path]:
    """Complete ``step_*`` checkpoints of a run, oldest first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [
        p
        for p in folder.iterdir()
        if p.is_dir() and _checkpoint_step(p) is not None and (p / _COMPLETE_MARKER).is_file()
    ]
    return sorted(found, key=lambda p: _checkpoint_step(p) or 0)


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint of a run folder (None when there is none)."""
    found = _step_checkpoints(Path(run_dir))
    return found[-1] if found else None


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint folder: ``model``, ``ema``, ``optimizer``, ``state``, ``info``.

    Only safetensors and ``torch.load(weights_only=True)`` are used, so a checkpoint
    cannot run code. Raises :class:`CheckpointError` naming the bad file.
    """
    from safetensors.torch import load_file

    folder = Path(path)
    marker = folder / _COMPLETE_MARKER
    if not marker.is_file():
        raise CheckpointError(f"{folder}: not a complete checkpoint (no {_COMPLETE_MARKER})")
    out: dict[str, Any] = {}
    try:
        out["info"] = json.loads(marker.read_text())
        out["model"] = load_file(str(folder / "model.safetensors"))
        ema = folder / "ema.safetensors"
        out["ema"] = load_file(str(ema)) if ema.is_file() else None
        optimizer_tensors = load_file(str(folder / "optimizer.safetensors"))
        out["state"] = torch.load(
            folder / "training_state.pt", map_location="cpu", weights_only=True
        )
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{folder}: unreadable checkpoint ({reason})") from None
    out["optimizer"] = _unflatten_optimizer(optimizer_tensors, out["state"]["optimizer"])
    return out


def _prune_checkpoints(run_dir: Path, keep: int) -> None:
    for old in _step_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _clean_partial_checkpoints(run_dir: Path) -> None:
    """Remove temp folders left by a run killed while writing a checkpoint."""
    folder = run_dir / CHECKPOINT_DIR
    if folder.is_dir():
        for path in folder.iterdir():
            if path.name.startswith(".") and (path.name.endswith(".tmp") or ".old-" in path.name):
                shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate_pairs(
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    *,
    device: torch.device,
    batch_size: int = 8,
    autocast: Any = contextlib.nullcontext,
) -> dict[str, torch.Tensor]:
    """Student outputs and per-pair PSNR/SSIM to the teacher over a dataset of triples."""
    was_training = model.training
    model.eval()
    contents, styles, targets, outputs = [], [], [], []
    # an explicit generator keeps the global RNG (and so resumed runs) untouched
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, generator=torch.Generator().manual_seed(0)
    )
    for content, style, target in loader:
        with autocast():
            out = model(content.to(device), style.to(device))
        outputs.append(out.float().clamp(0, 1).cpu())
        contents.append(content)
        styles.append(style)
        targets.append(target)
    model.train(was_training)
    output = torch.cat(outputs)
    target = torch.cat(targets)
    return {
        "content": torch.cat(contents),
        "style": torch.cat(styles),
        "teacher": target,
        "student": output,
        "psnr": psnr(output, target),
        "ssim": ssim(output, target),
    }


def _group_means(values: torch.Tensor, groups: Sequence[str], prefix: str) -> dict[str, float]:
    out = {prefix: float(values.mean())}
    for group in sorted(set(groups)):
        picked = [v for v, g in zip(values.tolist(), groups) if g == group]
        out[f"{prefix}_{group}"] = float(sum(picked) / len(picked))
    return out


# --------------------------------------------------------------------------- logging


class _RunLog:
    """JSON lines in RUN_DIR/log.jsonl plus TensorBoard scalars/images (rank 0 only)."""

    def __init__(self, run_dir: Path, enabled: bool, tensorboard: bool) -> None:
        self.enabled = enabled
        self.path = run_dir / LOG_FILE
        self.writer = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:
                warnings.warn(
                    "tensorboard is not installed: logging to log.jsonl only", stacklevel=2
                )

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"time": round(time.time(), 3), **record}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.writer is not None and "step" in record:
            prefix = record.get("type", "train")
            for key, value in record.items():
                if key not in ("step", "time", "type") and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{prefix}/{key}", value, record["step"])

    def image(self, tag: str, image: Any, step: int) -> None:
        if self.enabled and self.writer is not None:
            array = np.asarray(image)
            self.writer.add_image(tag, array, step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# --------------------------------------------------------------------------- the loop


def _build_student(config: TrainConfig) -> nn.Module:
    from .student import STTR

    overrides = dict(config.model_overrides)
    if config.backbone_weights is None:
        # Freezing the stem keeps pretrained low-level filters; frozen *random* filters
        # only cripple the tokenizers, so without weights everything trains.
        overrides.setdefault("freeze_backbone_stem", False)
        # Frozen statistics fitted to random weights go stale as those weights train, and
        # the backward pass then overflows (measured: gradient norm 1e24 after 130 steps
        # at lr 1e-3); trainable BatchNorm renormalizes every batch.
        overrides.setdefault("backbone_norm", "batch")
    try:
        return STTR.from_preset(
            config.preset, backbone_weights=config.backbone_weights, **overrides
        )
    except TypeError as exc:
        raise ConfigError(f"model settings: {exc}") from None


def _autocast_factory(device: torch.device, amp: str) -> Any:
    if device.type != "cuda" or amp == "none":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return lambda: torch.autocast(device_type="cuda", dtype=dtype)


def _teacher_description(data: Path) -> str:
    """``name (model id)`` of the teacher that made the dataset, for the model card."""
    from .dataset.reader import read_dataset_json, read_manifest

    plan = read_dataset_json(data)
    name, model = plan.get("teacher"), plan.get("model")
    if name is None:
        records = read_manifest(data)
        name = records[0].get("teacher") if records else None
        model = records[0].get("model") if records else None
    model_id = model.get("model_id") if isinstance(model, dict) else None
    return f"{name or 'unknown'}{f' ({model_id})' if model_id else ''}"


def train(config: TrainConfig) -> Path:
    """Train a student on ``config.data``; returns the saved student folder.

    See the module docstring for what a run writes and how resume works.
    """
    from .dataset.paired import PairedDataset
    from .losses import DistillationLoss, LossWeights

    config.validate()
    data_dir, run_dir = Path(config.data), Path(config.out)
    dist, device = _setup_distributed(config.device)
    try:
        return _train(
            config, data_dir, run_dir, dist, device, PairedDataset, DistillationLoss, LossWeights
        )
    finally:
        if dist.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _train(
    config: TrainConfig,
    data_dir: Path,
    run_dir: Path,
    dist: _Dist,
    device: torch.device,
    PairedDataset: Any,
    DistillationLoss: Any,
    LossWeights: Any,
) -> Path:
    # ---- run folder and resume point
    checkpoint = None
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _clean_partial_checkpoints(run_dir)
    dist.barrier()
    existing = latest_checkpoint(run_dir)
    if existing is not None and not config.resume:
        raise ConfigError(
            f"{run_dir} already holds checkpoints (latest {existing.name}); pass --resume to "
            "continue that run or choose another --out"
        )
    if existing is not None:
        checkpoint = load_checkpoint(existing)
    elif config.resume and dist.is_main:
        print(
            f"train: no checkpoint in {run_dir / CHECKPOINT_DIR}; starting from step 0",
            file=sys.stderr,
        )

    torch.manual_seed(config.seed)  # same seed on every rank: identical init
    student = _build_student(config).to(device)

    # ---- data: split by content and style, so validation has unseen styles
    train_keys, val_keys, val_groups = _split(data_dir, config.val_fraction, config.seed)
    augment = {} if config.augment else {"crop_scale": (1.0, 1.0), "flip": False}
    # styles at the resolution the student meets them in use (its style_size), not at the crop
    style_size = getattr(getattr(student, "config", None), "style_size", None) or config.size
    train_set = _EpochSeeded(
        PairedDataset(
            data_dir,
            size=config.size,
            train=True,
            keys=train_keys,
            style_size=style_size,
            **augment,
        ),
        config.seed,
    )
    per_rank = len(train_set) // dist.world_size
    per_epoch = per_rank // config.batch_size
    if per_epoch < 1:
        raise ConfigError(
            f"{data_dir}: {len(train_set)} training pairs over {dist.world_size} process(es) "
            f"give fewer than one batch of {config.batch_size}; lower --batch-size"
        )
    eval_keys = _spread(val_keys, config.val_max_pairs)
    val_set = PairedDataset(
        data_dir, size=config.size, train=False, keys=eval_keys, style_size=style_size
    )
    eval_groups = [val_groups[k] for k in val_set.keys]  # unreadable pairs were left out

    # ---- EMA, loss, optimizer
    fixed_items = _EpochSeeded(train_set.base, config.seed + 1)  # never touches the data order

    def fixed_batches(count: int, batch_size: int, salt: int) -> list[tuple[torch.Tensor, ...]]:
        """``count`` batches of training pairs chosen by the seed alone (same on every rank)."""
        generator = torch.Generator().manual_seed(config.seed * 1000 + salt)
        order = torch.randperm(len(fixed_items), generator=generator).tolist()
        batches = []
        for b in range(count):
            picked = [order[(b * batch_size + i) % len(order)] for i in range(batch_size)]
            batches.append(tuple(torch.stack(t) for t in zip(*(fixed_items[i] for i in picked))))
        return batches

    if checkpoint is None and config.backbone_weights is None:
        content, style, _ = fixed_batches(1, min(16, len(fixed_items)), salt=1)[0]
        init_backbone_statistics(student, content.to(device), style.to(device))
    student.train()
    ema = EMA(student, config.ema) if config.ema > 0 else None
    weights = LossWeights(
        pixel=config.pixel_weight,
        perceptual=config.perceptual_weight,
        texture=config.texture_weight,
        content=config.content_weight,
        style=config.style_weight,
    )
    loss_fn = DistillationLoss(
        weights,
        network=config.loss_network,
        network_weights=config.loss_network_weights,
        allow_random_weights=config.allow_random_loss_network,
    ).to(device)
    optimizer = torch.optim.AdamW(
        _param_groups(student, config),
        lr=config.lr,
        betas=(0.9, 0.999),
        weight_decay=config.weight_decay,
    )
    use_scaler = device.type == "cuda" and config.amp == "fp16"
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    autocast = _autocast_factory(device, config.amp)

    # ---- restore
    step, micro_step, best_psnr, consecutive_bad = 0, 0, -math.inf, 0
    if checkpoint is not None:
        student.load_state_dict(checkpoint["model"])
        if ema is not None:
            ema.model.load_state_dict(
                checkpoint["ema"] if checkpoint["ema"] is not None else checkpoint["model"]
            )
        optimizer.load_state_dict(checkpoint["optimizer"])
        for group in optimizer.param_groups:  # new flags win over the saved base rates
            group["base_lr"] = (
                config.backbone_lr if group["name"].startswith("backbone") else config.lr
            )
        if use_scaler and checkpoint["state"].get("scaler"):
            scaler.load_state_dict(checkpoint["state"]["scaler"])
        saved = checkpoint["state"]
        step, micro_step = int(saved["step"]), int(saved["micro_step"])
        best_psnr = float(saved.get("best_psnr", -math.inf))
        old = checkpoint["info"].get("config", {})
        changed = [
            k for k in ("batch_size", "grad_accum", "seed") if old.get(k) != getattr(config, k)
        ]
        if saved.get("world_size") != dist.world_size:
            changed.append("world size")
        if changed and dist.is_main:
            warnings.warn(
                f"resuming with a different {', '.join(changed)}: the data order will differ "
                "from an uninterrupted run",
                stacklevel=2,
            )
        rng_states = saved.get("rng", [])
        if len(rng_states) == dist.world_size:
            _set_rng_state(rng_states[dist.rank])
        else:
            torch.manual_seed(config.seed + dist.rank + step)
        del checkpoint
    else:
        random.seed(config.seed + dist.rank)
        np.random.seed((config.seed + dist.rank) % 2**32)
        torch.manual_seed(config.seed + dist.rank)  # dropout differs per rank

    model: nn.Module = student
    if dist.enabled:
        model = nn.parallel.DistributedDataParallel(
            student, device_ids=[device.index] if device.type == "cuda" else None
        )

    log = _RunLog(run_dir, dist.is_main, config.tensorboard)
    if dist.is_main:
        (run_dir / "train_config.json").write_text(
            json.dumps({**config.to_dict(), "world_size": dist.world_size}, indent=2) + "\n"
        )
        log.write(
            {
                "type": "start",
                "step": step,
                "train_pairs": len(train_keys),
                "val_pairs": len(val_keys),
                "val_scored": len(eval_keys),
                "world_size": dist.world_size,
                "device": str(device),
                "parameters": sum(p.numel() for p in student.parameters()),
                "loss_terms": loss_fn.active_terms(),
                "loss_network": loss_fn.describe(),
            }
        )

    batches = _batches(
        train_set,
        start_micro=micro_step,
        per_epoch=per_epoch,
        config=config,
        dist=dist,
        pin_memory=device.type == "cuda",
    )

    def make_payload(info_extra: dict[str, Any]) -> dict[str, Any] | None:
        """Everything a resume needs. Collective: every rank must call it."""
        rng = dist.gather(_rng_state())
        if not dist.is_main:
            return None
        optimizer_tensors, optimizer_rest = _flatten_optimizer(optimizer.state_dict())
        return {
            "model": _tensors_for_safetensors(student.state_dict()),
            "ema": _tensors_for_safetensors(ema.model.state_dict()) if ema is not None else None,
            "optimizer_tensors": optimizer_tensors,
            "state": {
                "step": step,
                "micro_step": micro_step,
                "best_psnr": best_psnr,
                "world_size": dist.world_size,
                "optimizer": optimizer_rest,
                "scaler": scaler.state_dict() if use_scaler else {},
                "rng": rng,
            },
            "info": {
                "step": step,
                "micro_step": micro_step,
                "epoch": micro_step // per_epoch,
                "world_size": dist.world_size,
                "best_psnr": best_psnr if math.isfinite(best_psnr) else None,
                "config": config.to_dict(),
                **info_extra,
            },
        }

    eval_model = ema.model if ema is not None else student
    recalibration: list[tuple[torch.Tensor, ...]] = []
    if dist.is_main and config.bn_recalibration_batches > 0:
        recalibration = fixed_batches(
            config.bn_recalibration_batches, min(config.batch_size, 8), salt=2
        )
    baselines_logged = False
    last_metrics: dict[str, float] = {}

    def run_eval() -> dict[str, float]:
        nonlocal baselines_logged
        result = evaluate_pairs(
            recalibrated_copy(eval_model, recalibration, device),
            val_set,
            device=device,
            batch_size=config.batch_size,
            autocast=autocast,
        )
        metrics = {
            **_group_means(result["psnr"], eval_groups, "psnr"),
            **_group_means(result["ssim"], eval_groups, "ssim"),
        }
        if not baselines_logged:
            matched = histogram_matched(result["content"], result["style"])
            baseline = {
                **_group_means(
                    psnr(result["content"], result["teacher"]), eval_groups, "content_psnr"
                ),
                **_group_means(
                    ssim(result["content"], result["teacher"]), eval_groups, "content_ssim"
                ),
                **_group_means(psnr(matched, result["teacher"]), eval_groups, "histmatch_psnr"),
                **_group_means(ssim(matched, result["teacher"]), eval_groups, "histmatch_ssim"),
            }
            log.write({"type": "baseline", "step": step, **baseline})
            baselines_logged = True
        from .images import image_grid

        rows = min(config.grid_rows, len(result["student"]))
        grid = image_grid(
            [
                [result[c][i] for c in ("content", "style", "teacher", "student")]
                for i in range(rows)
            ],
            column_labels=["content", "style", "teacher", "student"],
            captions=[
                ["", "", "", f"{float(result['psnr'][i]):.2f} dB ({eval_groups[i]})"]
                for i in range(rows)
            ],
            cell_size=min(256, max(96, config.size)),
        )
        from .images import save_image

        save_image(grid, run_dir / "samples" / f"step_{step:07d}.png")
        log.image("val/grid", grid, step)
        log.write({"type": "eval", "step": step, **metrics})
        return metrics

    # ---- the loop
    start_step = step
    start_time = time.monotonic()
    params = [p for p in student.parameters() if p.requires_grad]
    bar = None
    if dist.is_main and config.progress:
        from .runtime import progress_bar

        bar = progress_bar(total=config.steps, initial=step, desc="train", unit="step")
    window_time, window_steps = time.monotonic(), 0
    term_sums: dict[str, float] = {}
    loss_sum, loss_count = 0.0, 0
    last_good_checkpoint = latest_checkpoint(run_dir)
    bad_first_step = None
    stopped_early = False
    model.train()
    try:
        while step < config.steps:
            factor = lr_factor(
                step,
                total=config.steps,
                warmup=config.warmup,
                schedule=config.schedule,
                min_ratio=config.min_lr_ratio,
            )
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * factor

            # forward/backward over grad_accum micro-batches
            bad = False
            step_terms: dict[str, float] = {}
            step_loss = 0.0
            for micro in range(config.grad_accum):
                content, style, target = (t.to(device, non_blocking=True) for t in next(batches))
                micro_step += 1
                if dist.enabled:  # all-reduce gradients only on the last micro-batch
                    model.require_backward_grad_sync = micro == config.grad_accum - 1  # type: ignore[assignment]
                with autocast():
                    output = model(content, style)
                    loss, terms = loss_fn(output, target, content, style)
                if not torch.isfinite(loss.detach()):
                    bad = True
                scaler.scale(loss / config.grad_accum).backward()
                step_loss += float(loss.detach()) / config.grad_accum
                for name, value in terms.items():
                    step_terms[name] = (
                        step_terms.get(name, 0.0) + float(value.detach()) / config.grad_accum
                    )

            out_of_time = config.max_minutes is not None and (
                time.monotonic() - start_time > config.max_minutes * 60
            )
            bad, out_of_time = dist.any([bad, out_of_time], device)
            grad_norm = float("nan")
            if not bad:
                scaler.unscale_(optimizer)
                grad_norm = float(
                    torch.nn.utils.clip_grad_norm_(
                        params, config.clip if config.clip > 0 else float("inf")
                    )
                )
                if not math.isfinite(grad_norm) and not use_scaler:
                    bad = True  # finite loss but overflowing gradients (identical on all ranks)
            if bad:
                optimizer.zero_grad(set_to_none=True)
                consecutive_bad += 1
                bad_first_step = step if consecutive_bad == 1 else bad_first_step
                if dist.is_main:
                    warnings.warn(
                        f"step {step}: loss or gradient is NaN/inf; skipped the update",
                        stacklevel=2,
                    )
                    log.write({"type": "nonfinite", "step": step, "loss": step_loss})
                if consecutive_bad >= config.max_bad_steps:
                    where = (
                        f"last good checkpoint: {last_good_checkpoint}"
                        if last_good_checkpoint is not None
                        else "no checkpoint was written yet"
                    )
                    raise TrainingDivergedError(
                        f"loss was NaN/inf for {consecutive_bad} steps in a row (steps "
                        f"{bad_first_step}-{step}); stopped without saving; {where}; "
                        "try a lower --lr, a smaller --clip or --amp bf16"
                    )
            else:
                consecutive_bad = 0
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                if ema is not None:
                    ema.update(student, step)
                loss_sum += step_loss
                loss_count += 1
                for name, value in step_terms.items():
                    term_sums[name] = term_sums.get(name, 0.0) + value
            step += 1
            window_steps += 1

            if bar is not None:
                bar.update(1)
                if not bad:
                    bar.set_postfix(
                        {
                            "loss": f"{step_loss:.4f}",
                            **{k: f"{v:.4f}" for k, v in step_terms.items()},
                        }
                    )

            if step % config.log_every == 0 and loss_count:
                now = time.monotonic()
                its = window_steps / max(now - window_time, 1e-9)
                record = {
                    "type": "train",
                    "step": step,
                    "loss": loss_sum / loss_count,
                    **{k: v / loss_count for k, v in term_sums.items()},
                    "lr": optimizer.param_groups[-1]["lr"],
                    "backbone_lr": next(
                        (
                            g["lr"]
                            for g in optimizer.param_groups
                            if g["name"].startswith("backbone")
                        ),
                        0.0,
                    ),
                    "grad_norm": grad_norm,
                    "it_per_s": its,
                    "samples_per_s": its * config.batch_size * config.grad_accum * dist.world_size,
                    "epoch": micro_step / per_epoch,
                }
                log.write(record)
                window_time, window_steps = now, 0
                term_sums, loss_sum, loss_count = {}, 0.0, 0

            final = step >= config.steps or out_of_time
            is_best = False
            if step % config.eval_every == 0 or final:
                if dist.is_main:
                    last_metrics = run_eval()
                    is_best = last_metrics["psnr"] > best_psnr
                    best_psnr = max(best_psnr, last_metrics["psnr"])
                is_best = dist.any([is_best], device)[0]  # saving is collective

            if step % config.save_every == 0 or final or is_best:
                payload = make_payload({"val": last_metrics})
                if payload is not None:
                    if not _all_finite(student):
                        raise TrainingDivergedError(
                            f"step {step}: weights are not finite; not saving"
                        )
                    if step % config.save_every == 0 or final:
                        last_good_checkpoint = save_checkpoint(
                            run_dir / CHECKPOINT_DIR / f"step_{step:07d}", payload
                        )
                        _prune_checkpoints(run_dir, config.keep)
                    if is_best:
                        save_checkpoint(run_dir / CHECKPOINT_DIR / BEST_NAME, payload)
                dist.barrier()
            if out_of_time:
                stopped_early = True
                break
    finally:
        if bar is not None:
            bar.close()
        log.close()

    # ---- every rank must hold the same weights; then save the EMA student
    if dist.enabled:
        # DDP keeps parameters in sync and copies rank 0's buffers (BatchNorm statistics)
        # to the others at every forward; do that copy once more so all ranks end equal.
        for buffer in student.buffers():
            torch.distributed.broadcast(buffer, src=0)
    hashes = dist.gather(_state_hash(student))
    if len(set(hashes)) != 1:
        raise StyledistillError(f"DDP ranks hold different weights after training: {hashes}")
    student_dir = run_dir / STUDENT_DIR
    if dist.is_main:
        log = _RunLog(run_dir, True, False)
        skipped = {**train_set.base.unreadable_pairs(), **val_set.unreadable_pairs()}
        if skipped:
            log.write({"type": "skipped_pairs", "count": len(skipped), "pairs": skipped})
            print(
                f"train: skipped {len(skipped)} unreadable pair(s) (listed in "
                f"{run_dir / LOG_FILE}), first: {next(iter(skipped.items()))[0]}",
                file=sys.stderr,
            )
        log.write(
            {
                "type": "end",
                "skipped_pairs": len(skipped),
                "step": step,
                "steps_this_run": step - start_step,
                "minutes": (time.monotonic() - start_time) / 60,
                "stopped_early": stopped_early,
                "rank_weight_hashes": hashes,
                **{f"val_{k}": v for k, v in last_metrics.items()},
            }
        )
        final_model = recalibrated_copy(eval_model, recalibration, device).cpu().eval()
        card = {
            "training_data": str(data_dir.resolve()),
            "teacher": _teacher_description(data_dir),
            "steps": step,
            "weights": "EMA" if ema is not None else "raw",
            "training_pairs": len(train_keys),
            "validation": ", ".join(f"{k} {v:.4f}" for k, v in last_metrics.items()) or "not run",
            "loss": ", ".join(
                f"{k} x{getattr(loss_fn.weights, k)}" for k in loss_fn.active_terms()
            ),
            "loss_network": loss_fn.describe(),
            "backbone_weights": config.backbone_weights or "random init",
        }
        final_model.config.extra.update(
            {"loss_network": loss_fn.describe(), "teacher": card["teacher"]}
        )
        final_model.save_pretrained(student_dir, model_card=card)
    dist.barrier()
    return student_dir
