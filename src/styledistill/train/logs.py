"""What a run reports: JSON lines in RUN_DIR/log.jsonl, TensorBoard, the loss window.

Rank 0 writes; other ranks hold a disabled log, so callers need not check the rank.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

LOG_FILE = "log.jsonl"


class RunLog:
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


@dataclass
class LossWindow:
    """The steps since the last ``train`` log line: losses of the good ones, and the time."""

    started: float
    #: Every step, good or skipped (for the speed).
    steps: int = 0
    #: Good steps only (for the means).
    count: int = 0
    loss_sum: float = 0.0
    term_sums: dict[str, float] = field(default_factory=dict)

    def add(self, loss: float, terms: dict[str, float]) -> None:
        self.loss_sum += loss
        self.count += 1
        for name, value in terms.items():
            self.term_sums[name] = self.term_sums.get(name, 0.0) + value

    def means(self) -> dict[str, float]:
        """``loss`` and each term, averaged over the good steps."""
        return {
            "loss": self.loss_sum / self.count,
            **{k: v / self.count for k, v in self.term_sums.items()},
        }

    def restart(self, now: float) -> None:
        self.started, self.steps = now, 0
        self.term_sums, self.loss_sum, self.count = {}, 0.0, 0
