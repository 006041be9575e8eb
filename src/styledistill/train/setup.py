"""Setting up a run: folder and resume point, student, data, loss, optimizer, log.

The order matters for exact resume and for identical runs: the init seed is set before
the student is built, and each rank's RNG is seeded (or restored) only once everything
that draws from it at construction exists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..plumbing import atomic_path
from .checkpoints import open_run_dir, restore
from .config import TrainConfig
from .data import EpochSeeded, fixed_batches, load_training_data, micro_batches
from .distributed import Dist
from .ema import EMA
from .logs import RunLog
from .model import build_student, init_backbone_statistics
from .optim import autocast_factory, param_groups
from .rng import seed_everything
from .state import Progress, Run
from .validation import Validator


def set_up(
    config: TrainConfig, data_dir: Path, run_dir: Path, dist: Dist, device: torch.device
) -> tuple[Run, Progress, Validator]:
    """Everything the loop needs, restored from the latest checkpoint on ``resume``."""
    checkpoint = open_run_dir(run_dir, resume=config.resume, dist=dist)
    torch.manual_seed(config.seed)  # same seed on every rank: identical init
    student = build_student(config).to(device)
    # styles at the resolution the student meets them in use (its style_size), not at the crop
    style_size = getattr(getattr(student, "config", None), "style_size", None) or config.size
    data = load_training_data(config, data_dir, dist, style_size=style_size)
    fixed_items = EpochSeeded(data.train_set.base, config.seed + 1)  # never touches the data order
    if checkpoint is None and config.backbone_weights is None and config.init is None:
        content, style, _ = fixed_batches(
            fixed_items, seed=config.seed, count=1, batch_size=min(16, len(fixed_items)), salt=1
        )[0]
        init_backbone_statistics(student, content.to(device), style.to(device))
    student.train()
    ema = EMA(student, config.ema) if config.ema > 0 else None
    loss_fn = _loss_function(config).to(device)
    optimizer = torch.optim.AdamW(
        param_groups(student, config),
        lr=config.lr,
        betas=(0.9, 0.999),
        weight_decay=config.weight_decay,
    )
    use_scaler = device.type == "cuda" and config.amp == "fp16"
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    if checkpoint is not None:
        progress = restore(
            checkpoint,
            student=student,
            ema=ema,
            optimizer=optimizer,
            scaler=scaler,
            use_scaler=use_scaler,
            config=config,
            dist=dist,
        )
        del checkpoint
    else:
        progress = Progress()
        seed_everything(config.seed + dist.rank)  # dropout differs per rank

    model: nn.Module = student
    if dist.enabled:
        model = nn.parallel.DistributedDataParallel(
            student, device_ids=[device.index] if device.type == "cuda" else None
        )
    recalibration: list[tuple[torch.Tensor, ...]] = []
    if dist.is_main and config.bn_recalibration_batches > 0:
        recalibration = fixed_batches(
            fixed_items,
            seed=config.seed,
            count=config.bn_recalibration_batches,
            batch_size=min(config.batch_size, 8),
            salt=2,
        )
    run = Run(
        config=config,
        data_dir=data_dir,
        run_dir=run_dir,
        dist=dist,
        device=device,
        student=student,
        model=model,
        ema=ema,
        loss_fn=loss_fn,
        optimizer=optimizer,
        scaler=scaler,
        use_scaler=use_scaler,
        autocast=autocast_factory(device, config.amp),
        data=data,
        batches=micro_batches(
            data.train_set,
            start_micro=progress.micro_step,
            per_epoch=data.per_epoch,
            config=config,
            dist=dist,
            pin_memory=device.type == "cuda",
        ),
        log=RunLog(run_dir, dist.is_main, config.tensorboard),
        recalibration=recalibration,
    )
    if dist.is_main:
        _write_start(run, progress.step)
    return run, progress, _validator(run)


def _loss_function(config: TrainConfig) -> nn.Module:
    from ..losses import TERMS, DistillationLoss, LossWeights

    weights = LossWeights(**{term: getattr(config, f"{term}_weight") for term in TERMS})
    return DistillationLoss(
        weights,
        network=config.loss_network,
        network_weights=config.loss_network_weights,
        allow_random_weights=config.allow_random_loss_network,
        texture_tiles=config.texture_tiles,
    )


def _write_start(run: Run, step: int) -> None:
    """RUN_DIR/train_config.json (the settings of this start) and the ``start`` log line."""
    config, dist = run.config, run.dist
    settings: dict[str, Any] = {**config.to_dict(), "world_size": dist.world_size}
    with atomic_path(run.run_dir / "train_config.json") as tmp:
        tmp.write_text(json.dumps(settings, indent=2) + "\n")
    run.log.write(
        {
            "type": "start",
            "step": step,
            "train_pairs": run.data.train_pairs,
            "val_pairs": run.data.val_pairs,
            "val_scored": run.data.val_scored,
            "world_size": dist.world_size,
            "device": str(run.device),
            "parameters": sum(p.numel() for p in run.student.parameters()),
            "loss_terms": run.loss_fn.active_terms(),
            "loss_network": run.loss_fn.describe(),
        }
    )


def _validator(run: Run) -> Validator:
    config = run.config
    return Validator(
        run.eval_model,
        run.data.val_set,
        run.data.val_groups,
        recalibration=run.recalibration,
        device=run.device,
        autocast=run.autocast,
        batch_size=config.batch_size,
        grid_rows=config.grid_rows,
        grid_cell=min(256, max(96, config.size)),
        samples_dir=run.run_dir / "samples",
        log=run.log,
    )
