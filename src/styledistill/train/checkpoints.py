"""Checkpoints: resume points that a crash can never leave half-written.

A checkpoint holds the model, EMA, optimizer, GradScaler, step, every rank's RNG states
and the position in the data order, so a resumed run continues exactly. It is written
to a temporary folder, fsynced and renamed into place; ``trainer.json`` is written last
and marks it complete.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..plumbing import make_shareable, weights_error_reason
from ..weights_io import read_state_dict
from .config import TrainConfig
from .distributed import Dist
from .ema import EMA
from .model import all_finite
from .optim import set_base_lrs
from .rng import rng_state, set_rng_state
from .state import Progress, Run, TrainingDivergedError

CHECKPOINT_DIR = "checkpoints"
BEST_NAME = "best"
_COMPLETE_MARKER = "trainer.json"  # written last inside a checkpoint folder


# --------------------------------------------------------------------------- files


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
    folder = Path(path)
    marker = folder / _COMPLETE_MARKER
    if not marker.is_file():
        raise CheckpointError(f"{folder}: not a complete checkpoint (no {_COMPLETE_MARKER})")
    out: dict[str, Any] = {}
    try:
        out["info"] = json.loads(marker.read_text())
        out["model"] = read_state_dict(folder / "model.safetensors")  # non-finite: refused
        ema = folder / "ema.safetensors"
        out["ema"] = read_state_dict(ema) if ema.is_file() else None
        optimizer_tensors = read_state_dict(folder / "optimizer.safetensors")
        out["state"] = torch.load(
            folder / "training_state.pt", map_location="cpu", weights_only=True
        )
    except CheckpointError:
        raise
    except Exception as exc:
        reason = weights_error_reason(exc)
        raise CheckpointError(f"{folder}: unreadable checkpoint ({reason})") from None
    out["optimizer"] = _unflatten_optimizer(optimizer_tensors, out["state"]["optimizer"])
    return out


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    for old in _step_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def clean_partial_checkpoints(run_dir: Path) -> None:
    """Remove temp folders left by a run killed while writing a checkpoint."""
    folder = run_dir / CHECKPOINT_DIR
    if folder.is_dir():
        for path in folder.iterdir():
            if path.name.startswith(".") and (path.name.endswith(".tmp") or ".old-" in path.name):
                shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- a run's resume points


def open_run_dir(run_dir: Path, *, resume: bool, dist: Dist) -> dict[str, Any] | None:
    """Make the run folder, drop partial checkpoints; the resume point when there is one.

    A folder with checkpoints is only continued with ``resume`` (never overwritten).
    """
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        clean_partial_checkpoints(run_dir)
    dist.barrier()
    existing = latest_checkpoint(run_dir)
    if existing is not None and not resume:
        raise ConfigError(
            f"{run_dir} already holds checkpoints (latest {existing.name}); pass --resume to "
            "continue that run or choose another --out"
        )
    if existing is not None:
        return load_checkpoint(existing)
    if resume and dist.is_main:
        print(
            f"train: no checkpoint in {run_dir / CHECKPOINT_DIR}; starting from step 0",
            file=sys.stderr,
        )
    return None


def restore(
    checkpoint: dict[str, Any],
    *,
    student: nn.Module,
    ema: EMA | None,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    use_scaler: bool,
    config: TrainConfig,
    dist: Dist,
) -> Progress:
    """Load a resume point into freshly built objects; returns where the run stood."""
    student.load_state_dict(checkpoint["model"])
    if ema is not None:
        ema.model.load_state_dict(
            checkpoint["ema"] if checkpoint["ema"] is not None else checkpoint["model"]
        )
    optimizer.load_state_dict(checkpoint["optimizer"])
    set_base_lrs(optimizer, config)
    if use_scaler and checkpoint["state"].get("scaler"):
        scaler.load_state_dict(checkpoint["state"]["scaler"])
    saved = checkpoint["state"]
    progress = Progress(
        step=int(saved["step"]),
        micro_step=int(saved["micro_step"]),
        best_psnr=float(saved.get("best_psnr", -math.inf)),
    )
    old = checkpoint["info"].get("config", {})
    changed = [k for k in ("batch_size", "grad_accum", "seed") if old.get(k) != getattr(config, k)]
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
        set_rng_state(rng_states[dist.rank])
    else:
        torch.manual_seed(config.seed + dist.rank + progress.step)
    return progress


def _payload(run: Run, progress: Progress, info_extra: dict[str, Any]) -> dict[str, Any] | None:
    """Everything a resume needs (None off rank 0). Collective: every rank must call it."""
    rng = run.dist.gather(rng_state())
    if not run.dist.is_main:
        return None
    optimizer_tensors, optimizer_rest = _flatten_optimizer(run.optimizer.state_dict())
    ema = run.ema
    return {
        "model": _tensors_for_safetensors(run.student.state_dict()),
        "ema": _tensors_for_safetensors(ema.model.state_dict()) if ema is not None else None,
        "optimizer_tensors": optimizer_tensors,
        "state": {
            "step": progress.step,
            "micro_step": progress.micro_step,
            "best_psnr": progress.best_psnr,
            "world_size": run.dist.world_size,
            "optimizer": optimizer_rest,
            "scaler": run.scaler.state_dict() if run.use_scaler else {},
            "rng": rng,
        },
        "info": {
            "step": progress.step,
            "micro_step": progress.micro_step,
            "epoch": progress.micro_step // run.data.per_epoch,
            "world_size": run.dist.world_size,
            "best_psnr": progress.best_psnr if math.isfinite(progress.best_psnr) else None,
            "config": run.config.to_dict(),
            **info_extra,
        },
    }


def save_resume_points(run: Run, progress: Progress, *, periodic: bool, best: bool) -> None:
    """Save ``step_XXXXXXX`` (keeping the last ``keep``) and/or ``best``. Collective.

    Non-finite weights are never saved: the run stops instead.
    """
    payload = _payload(run, progress, {"val": progress.last_metrics})
    if payload is not None:
        if not all_finite(run.student):
            raise TrainingDivergedError(f"step {progress.step}: weights are not finite; not saving")
        folder = run.run_dir / CHECKPOINT_DIR
        if periodic:
            progress.last_good_checkpoint = save_checkpoint(
                folder / f"step_{progress.step:07d}", payload
            )
            prune_checkpoints(run.run_dir, run.config.keep)
        if best:
            save_checkpoint(folder / BEST_NAME, payload)
    run.dist.barrier()
