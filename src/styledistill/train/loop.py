"""The training loop: ``train(config)`` runs set-up, steps until done, then finishes.

One readable loop in the nanoGPT manner, no framework. A step is: learning rate from
the schedule, forward/backward over ``grad_accum`` micro-batches, a NaN/inf guard, the
clipped update and the EMA; then, on their intervals, a log line, a validation and
checkpoints. Every rank runs the same steps; only rank 0 validates and writes.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoints import latest_checkpoint, save_resume_points
from .config import TrainConfig
from .distributed import setup_distributed
from .finish import finish
from .logs import LossWindow
from .memory import check_training_memory
from .optim import lr_factor
from .setup import set_up
from .state import Progress, Run, TrainingDivergedError
from .validation import Validator


def train(config: TrainConfig) -> Path:
    """Train a student on ``config.data``; returns the saved student folder.

    See the package docstring for what a run writes and how resume works.
    """
    config.validate()
    data_dir, run_dir = Path(config.data), Path(config.out)
    dist, device = setup_distributed(config.device)
    try:
        check_training_memory(config, device)  # before RUN_DIR is made
        run, progress, validate = set_up(config, data_dir, run_dir, dist, device)
        start_step, start_time = progress.step, time.monotonic()
        try:
            stopped_early = _steps(run, progress, validate, start_time)
        finally:
            run.log.close()
        return finish(
            run,
            progress,
            steps_this_run=progress.step - start_step,
            start_time=start_time,
            stopped_early=stopped_early,
        )
    finally:
        if dist.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _steps(run: Run, progress: Progress, validate: Validator, start_time: float) -> bool:
    """Optimizer steps until ``config.steps`` or ``max_minutes``; True when time ran out."""
    config = run.config
    params = [p for p in run.student.parameters() if p.requires_grad]
    bar = None
    if run.dist.is_main and config.progress:
        from ..runtime import progress_bar

        bar = progress_bar(total=config.steps, initial=progress.step, desc="train", unit="step")
    window = LossWindow(time.monotonic())
    progress.last_good_checkpoint = latest_checkpoint(run.run_dir)
    run.model.train()
    try:
        while progress.step < config.steps:
            result = _optimisation_step(run, progress, params, start_time)
            if not result.bad:
                window.add(result.loss, result.terms)
            progress.step += 1
            window.steps += 1
            if bar is not None:
                bar.update(1)
                if not result.bad:
                    bar.set_postfix(
                        {
                            "loss": f"{result.loss:.4f}",
                            **{k: f"{v:.4f}" for k, v in result.terms.items()},
                        }
                    )
            if progress.step % config.log_every == 0 and window.count:
                _log_window(run, progress, window, result.grad_norm)
            final = progress.step >= config.steps or result.out_of_time
            _evaluate_and_save(run, progress, validate, final=final)
            if result.out_of_time:
                return True
    finally:
        if bar is not None:
            bar.close()
    return False


@dataclass
class _StepResult:
    loss: float
    terms: dict[str, float]
    grad_norm: float
    #: The loss or gradient was NaN/inf on some rank: no update was made.
    bad: bool
    #: ``max_minutes`` passed (on some rank): this is the last step.
    out_of_time: bool


def _optimisation_step(
    run: Run, progress: Progress, params: list[nn.Parameter], start_time: float
) -> _StepResult:
    """One optimizer step (or a skipped one), identical on every rank."""
    config, optimizer = run.config, run.optimizer
    factor = lr_factor(
        progress.step,
        total=config.steps,
        warmup=config.warmup,
        schedule=config.schedule,
        min_ratio=config.min_lr_ratio,
    )
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
    loss, terms, bad = _forward_backward(run, progress)
    out_of_time = config.max_minutes is not None and (
        time.monotonic() - start_time > config.max_minutes * 60
    )
    bad, out_of_time = run.dist.any([bad, out_of_time], run.device)
    grad_norm = float("nan")
    if not bad:
        run.scaler.unscale_(optimizer)
        grad_norm = float(
            torch.nn.utils.clip_grad_norm_(params, config.clip if config.clip > 0 else math.inf)
        )
        if not math.isfinite(grad_norm) and not run.use_scaler:
            bad = True  # finite loss but overflowing gradients (identical on all ranks)
    if bad:
        _skip_update(run, progress, loss)
    else:
        progress.consecutive_bad = 0
        run.scaler.step(optimizer)
        run.scaler.update()
        optimizer.zero_grad(set_to_none=True)
        if run.ema is not None:
            run.ema.update(run.student, progress.step)
    return _StepResult(loss, terms, grad_norm, bad, out_of_time)


def _forward_backward(run: Run, progress: Progress) -> tuple[float, dict[str, float], bool]:
    """Gradients of ``grad_accum`` micro-batches: (mean loss, mean terms, any NaN/inf loss)."""
    accum = run.config.grad_accum
    bad = False
    step_terms: dict[str, float] = {}
    step_loss = 0.0
    for micro in range(accum):
        content, style, target = (t.to(run.device, non_blocking=True) for t in next(run.batches))
        progress.micro_step += 1
        if run.dist.enabled:  # all-reduce gradients only on the last micro-batch
            run.model.require_backward_grad_sync = micro == accum - 1  # type: ignore[assignment]
        with run.autocast():
            output = run.model(content, style)
            loss, terms = run.loss_fn(output, target, content, style)
        if not torch.isfinite(loss.detach()):
            bad = True
        run.scaler.scale(loss / accum).backward()
        step_loss += float(loss.detach()) / accum
        for name, value in terms.items():
            step_terms[name] = step_terms.get(name, 0.0) + float(value.detach()) / accum
    return step_loss, step_terms, bad


def _skip_update(run: Run, progress: Progress, loss: float) -> None:
    """Drop a NaN/inf step's gradients; ``max_bad_steps`` in a row stop the run unsaved."""
    run.optimizer.zero_grad(set_to_none=True)
    step = progress.step
    progress.consecutive_bad += 1
    if progress.consecutive_bad == 1:
        progress.bad_first_step = step
    if run.dist.is_main:
        warnings.warn(f"step {step}: loss or gradient is NaN/inf; skipped the update", stacklevel=2)
        run.log.write({"type": "nonfinite", "step": step, "loss": loss})
    if progress.consecutive_bad >= run.config.max_bad_steps:
        where = (
            f"last good checkpoint: {progress.last_good_checkpoint}"
            if progress.last_good_checkpoint is not None
            else "no checkpoint was written yet"
        )
        raise TrainingDivergedError(
            f"loss was NaN/inf for {progress.consecutive_bad} steps in a row (steps "
            f"{progress.bad_first_step}-{step}); stopped without saving; {where}; "
            "try a lower --lr, a smaller --clip or --amp bf16"
        )


def _log_window(run: Run, progress: Progress, window: LossWindow, grad_norm: float) -> None:
    """The ``train`` log line: mean losses since the last one, learning rates, speed."""
    config, groups = run.config, run.optimizer.param_groups
    now = time.monotonic()
    its = window.steps / max(now - window.started, 1e-9)
    record: dict[str, Any] = {
        "type": "train",
        "step": progress.step,
        **window.means(),
        "lr": groups[-1]["lr"],
        "backbone_lr": next((g["lr"] for g in groups if g["name"].startswith("backbone")), 0.0),
        "grad_norm": grad_norm,
        "it_per_s": its,
        "samples_per_s": its * config.batch_size * config.grad_accum * run.dist.world_size,
        "epoch": progress.micro_step / run.data.per_epoch,
    }
    run.log.write(record)
    window.restart(now)


def _evaluate_and_save(run: Run, progress: Progress, validate: Validator, *, final: bool) -> None:
    """Validate and checkpoint when due. Collective: every rank calls it.

    Validation every ``eval_every`` steps and at the end; ``step_*`` every ``save_every``
    steps and at the end; ``best`` on a new best validation PSNR.
    """
    config, step = run.config, progress.step
    is_best = False
    if step % config.eval_every == 0 or final:
        if run.dist.is_main:
            progress.last_metrics = validate(step)
            is_best = progress.last_metrics["psnr"] > progress.best_psnr
            progress.best_psnr = max(progress.best_psnr, progress.last_metrics["psnr"])
        is_best = run.dist.any([is_best], run.device)[0]  # saving is collective
    periodic = step % config.save_every == 0 or final
    if periodic or is_best:
        save_resume_points(run, progress, periodic=periodic, best=is_best)
