"""The end of a run: ranks agree on the weights, the ``end`` line, the student folder.

The student saved is the EMA (else the raw weights) with BatchNorm statistics
recomputed, plus a model card naming the teacher, the data and the loss.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from ..errors import StyledistillError
from .distributed import state_hash
from .logs import LOG_FILE, RunLog
from .model import recalibrated_copy
from .state import Progress, Run

STUDENT_DIR = "student"


def finish(
    run: Run, progress: Progress, *, steps_this_run: int, start_time: float, stopped_early: bool
) -> Path:
    """Check that every rank holds the same weights, log the end, save the student."""
    dist, student = run.dist, run.student
    if dist.enabled:
        # DDP keeps parameters in sync and copies rank 0's buffers (BatchNorm statistics)
        # to the others at every forward; do that copy once more so all ranks end equal.
        for buffer in student.buffers():
            torch.distributed.broadcast(buffer, src=0)
    hashes = dist.gather(state_hash(student))
    if len(set(hashes)) != 1:
        raise StyledistillError(f"DDP ranks hold different weights after training: {hashes}")
    student_dir = run.run_dir / STUDENT_DIR
    if dist.is_main:
        log = RunLog(run.run_dir, True, False)
        skipped = {
            **run.data.train_set.base.unreadable_pairs(),
            **run.data.val_set.unreadable_pairs(),
        }
        if skipped:
            log.write({"type": "skipped_pairs", "count": len(skipped), "pairs": skipped})
            print(
                f"train: skipped {len(skipped)} unreadable pair(s) (listed in "
                f"{run.run_dir / LOG_FILE}), first: {next(iter(skipped.items()))[0]}",
                file=sys.stderr,
            )
        log.write(
            {
                "type": "end",
                "skipped_pairs": len(skipped),
                "step": progress.step,
                "steps_this_run": steps_this_run,
                "minutes": (time.monotonic() - start_time) / 60,
                "stopped_early": stopped_early,
                "rank_weight_hashes": hashes,
                **{f"val_{k}": v for k, v in progress.last_metrics.items()},
            }
        )
        _save_student(run, progress, student_dir)
    dist.barrier()
    return student_dir


def _save_student(run: Run, progress: Progress, student_dir: Path) -> None:
    """The EMA student with recomputed BatchNorm statistics and its model card."""
    config, loss_fn, metrics = run.config, run.loss_fn, progress.last_metrics
    final_model = recalibrated_copy(run.eval_model, run.recalibration, run.device).cpu().eval()
    card = {
        "training_data": str(run.data_dir.resolve()),
        "teacher": _teacher_description(run.data_dir),
        "steps": progress.step,
        "weights": "EMA" if run.ema is not None else "raw",
        "training_pairs": run.data.train_pairs,
        "validation": ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) or "not run",
        "loss": ", ".join(f"{k} x{getattr(loss_fn.weights, k)}" for k in loss_fn.active_terms()),
        "loss_network": loss_fn.describe(),
        "backbone_weights": config.backbone_weights or "random init",
    }
    final_model.config.extra.update(
        {"loss_network": loss_fn.describe(), "teacher": card["teacher"]}
    )
    final_model.save_pretrained(student_dir, model_card=card)


def _teacher_description(data: Path) -> str:
    """``name (model id)`` of the teacher that made the dataset, for the model card."""
    from ..dataset.reader import read_dataset_json, read_manifest

    plan = read_dataset_json(data)
    name, model = plan.get("teacher"), plan.get("model")
    if name is None:
        records = read_manifest(data)
        name = records[0].get("teacher") if records else None
        model = records[0].get("model") if records else None
    model_id = model.get("model_id") if isinstance(model, dict) else None
    return f"{name or 'unknown'}{f' ({model_id})' if model_id else ''}"
