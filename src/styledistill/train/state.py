"""What a run holds while it trains: the objects set up once, and the counters that move.

Split so that checkpoints, validation and the loop share one picture of a run, and so
that what a resume point must restore (``Progress``) is written down in one place.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import StyledistillError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .config import TrainConfig
    from .data import TrainingData
    from .distributed import Dist
    from .ema import EMA
    from .logs import RunLog


class TrainingDivergedError(StyledistillError):
    """The loss stayed NaN/inf for too many steps in a row."""


@dataclass
class Progress:
    """Where the run is: saved in every checkpoint, restored by a resume."""

    step: int = 0
    micro_step: int = 0
    best_psnr: float = -math.inf
    #: NaN/inf steps in a row, and the first of them (not saved: a checkpoint follows a
    #: good step).
    consecutive_bad: int = 0
    bad_first_step: int | None = None
    #: Named in the error when the run diverges.
    last_good_checkpoint: Path | None = None
    last_metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Run:
    """Everything a run sets up once (``setup.set_up``) and then only uses."""

    config: TrainConfig
    data_dir: Path
    run_dir: Path
    dist: Dist
    device: torch.device
    student: nn.Module
    #: The student, or its DDP wrapper under torchrun.
    model: nn.Module
    ema: EMA | None
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    use_scaler: bool
    #: A no-argument factory of the autocast context (``optim.autocast_factory``).
    autocast: Any
    data: TrainingData
    batches: Iterator[tuple[torch.Tensor, ...]]
    log: RunLog
    #: Training batches for recomputing BatchNorm statistics (rank 0; empty when off).
    recalibration: list[tuple[torch.Tensor, ...]]

    @property
    def eval_model(self) -> nn.Module:
        """What validation scores and the student folder holds: the EMA, else the raw weights."""
        return self.ema.model if self.ema is not None else self.student
