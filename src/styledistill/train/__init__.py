"""Training: distil a teacher dataset into the STTR student (docs/architecture.md).

``train(TrainConfig(data=..., out=...))`` returns the student folder. Single process, or
DDP under ``torchrun``. A run is resumable exactly and crash-safe: see checkpoints.py.

Run folder layout::

    RUN_DIR/log.jsonl            one JSON line per log interval and per validation
    RUN_DIR/train_config.json    the settings of the latest start
    RUN_DIR/samples/step_XXXXXXX.png   content | style | teacher | student grids
    RUN_DIR/tensorboard/         TensorBoard events (when tensorboard is installed)
    RUN_DIR/checkpoints/step_XXXXXXX/  the last ``keep`` resume points
    RUN_DIR/checkpoints/best/    the resume point with the best validation PSNR
    RUN_DIR/student/             the EMA student (``STTR.save_pretrained``)

One job per module: config (settings and their defaults), setup, loop (the steps),
finish, checkpoints, data, ema, model, optim, validation, logs, distributed, rng,
state. Only ``config`` is imported eagerly: the CLI reads its defaults from it without
importing torch; every other name here loads its module on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..plumbing import lazy_attributes
from .config import AMP_MODES as AMP_MODES
from .config import SCHEDULES as SCHEDULES
from .config import TrainConfig

if TYPE_CHECKING:  # what __getattr__ below loads, for type checkers and editors
    from .checkpoints import BEST_NAME as BEST_NAME
    from .checkpoints import CHECKPOINT_DIR, latest_checkpoint, load_checkpoint
    from .checkpoints import save_checkpoint as save_checkpoint
    from .ema import EMA as EMA
    from .finish import STUDENT_DIR as STUDENT_DIR
    from .logs import LOG_FILE as LOG_FILE
    from .loop import train
    from .model import init_backbone_statistics as init_backbone_statistics
    from .model import recalibrated_copy as recalibrated_copy
    from .optim import lr_factor
    from .state import TrainingDivergedError
    from .validation import evaluate_pairs, histogram_matched, psnr, ssim

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

#: name -> the module of this package that defines it (imported on first access).
_LAZY = {
    "BEST_NAME": ".checkpoints",
    "CHECKPOINT_DIR": ".checkpoints",
    "latest_checkpoint": ".checkpoints",
    "load_checkpoint": ".checkpoints",
    "save_checkpoint": ".checkpoints",
    "EMA": ".ema",
    "STUDENT_DIR": ".finish",
    "LOG_FILE": ".logs",
    "train": ".loop",
    "init_backbone_statistics": ".model",
    "recalibrated_copy": ".model",
    "lr_factor": ".optim",
    "TrainingDivergedError": ".state",
    "evaluate_pairs": ".validation",
    "histogram_matched": ".validation",
    "psnr": ".validation",
    "ssim": ".validation",
}

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
