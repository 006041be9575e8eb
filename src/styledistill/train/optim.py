"""AdamW groups, the learning-rate schedule and mixed precision.

The learning rate is a pure function of the step, so resume needs no scheduler state.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .config import SCHEDULES, TrainConfig


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


def param_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
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


def set_base_lrs(optimizer: torch.optim.Optimizer, config: TrainConfig) -> None:
    """The configured base rates on a resumed optimizer (new flags win over saved ones)."""
    for group in optimizer.param_groups:
        group["base_lr"] = config.backbone_lr if group["name"].startswith("backbone") else config.lr


def autocast_factory(device: torch.device, amp: str) -> Any:
    """A no-argument context-manager factory: autocast on CUDA, else a no-op (CPUs run fp32)."""
    if device.type != "cuda" or amp == "none":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return lambda: torch.autocast(device_type="cuda", dtype=dtype)
