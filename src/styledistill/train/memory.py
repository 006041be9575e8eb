"""The pixel budget of a training run, checked before the run folder is made.

One training step holds a micro-batch of crops through the student, its backward
pass, AdamW and the loss network; validation holds the same batch at the same size.
The student's settings (preset plus ``model_overrides``, or the ``init`` student's) give its decoder width
without building it (:mod:`styledistill.budget`).
"""

from __future__ import annotations

from typing import Any

from ..budget import check_memory, training_bytes_per_pixel
from ..errors import ConfigError
from .config import TrainConfig


def check_training_memory(config: TrainConfig, device: Any = None) -> None:
    """Refuse (one line) a ``batch_size x size x size`` step that cannot fit on ``device``."""
    from ..student.presets import preset_config
    from ..student.sttr import STTR

    if config.init is not None:
        student = STTR.read_config(config.init)[1]
    else:
        try:
            student = preset_config(config.preset, **config.model_overrides)
        except TypeError as exc:
            raise ConfigError(f"model settings: {exc}") from None
    per_pixel = training_bytes_per_pixel(student.image_decoder_channels()[-1])
    batch, size = config.batch_size, config.size
    shape = (batch, size, size) if batch > 1 else (size, size)
    need = per_pixel * batch * size * size
    check_memory(
        "training", shape, need, max_pixels=config.max_pixels, device=device or config.device
    )
