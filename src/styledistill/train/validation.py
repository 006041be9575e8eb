"""Held-out scoring during training: PSNR/SSIM to the teacher per group, baselines, grids.

Scores are reported per group of what the student has not seen (content, style or both),
so a run shows how the student does on styles it never trained on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .logs import RunLog
from .model import recalibrated_copy


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB (``metrics.fidelity``), capped at 100 dB so logs stay finite."""
    from ..metrics.fidelity import psnr as fidelity_psnr

    return fidelity_psnr(prediction, target).clamp(max=100.0).float()


def ssim(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of ``[B,3,H,W]`` images in [0, 1] (``metrics.fidelity``)."""
    from ..metrics.fidelity import ssim as fidelity_ssim

    return fidelity_ssim(prediction, target).float()


def histogram_matched(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Baseline for a batch: ``image_ops.histogram_matched`` per image."""
    from ..image_ops import histogram_matched as match_one

    return torch.stack([match_one(c.cpu(), s.cpu()) for c, s in zip(content, style)])


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


class Validator:
    """Scores a model on the held-out pairs and logs it (rank 0 calls it; not collective).

    Each call recalibrates a copy's BatchNorm statistics first, writes an ``eval`` line,
    a sample grid (content | style | teacher | student) to RUN_DIR/samples and to
    TensorBoard; the first call also logs the ``baseline`` line (the content itself and
    histogram matching, scored the same way).
    """

    def __init__(
        self,
        model: nn.Module,
        pairs: torch.utils.data.Dataset,
        groups: Sequence[str],
        *,
        recalibration: Sequence[tuple[torch.Tensor, ...]],
        device: torch.device,
        autocast: Any,
        batch_size: int,
        grid_rows: int,
        grid_cell: int,
        samples_dir: Path,
        log: RunLog,
    ) -> None:
        self.model, self.pairs, self.groups = model, pairs, list(groups)
        self.recalibration, self.device, self.autocast = recalibration, device, autocast
        self.batch_size, self.grid_rows, self.grid_cell = batch_size, grid_rows, grid_cell
        self.samples_dir, self.log = samples_dir, log
        self.baselines_logged = False

    def __call__(self, step: int) -> dict[str, float]:
        result = evaluate_pairs(
            recalibrated_copy(self.model, self.recalibration, self.device),
            self.pairs,
            device=self.device,
            batch_size=self.batch_size,
            autocast=self.autocast,
        )
        metrics = {
            **_group_means(result["psnr"], self.groups, "psnr"),
            **_group_means(result["ssim"], self.groups, "ssim"),
        }
        if not self.baselines_logged:
            self.log.write({"type": "baseline", "step": step, **self._baselines(result)})
            self.baselines_logged = True
        grid = self._grid(result)
        from ..images import save_image

        save_image(grid, self.samples_dir / f"step_{step:07d}.png")
        self.log.image("val/grid", grid, step)
        self.log.write({"type": "eval", "step": step, **metrics})
        return metrics

    def _baselines(self, result: dict[str, torch.Tensor]) -> dict[str, float]:
        groups, teacher = self.groups, result["teacher"]
        matched = histogram_matched(result["content"], result["style"])
        return {
            **_group_means(psnr(result["content"], teacher), groups, "content_psnr"),
            **_group_means(ssim(result["content"], teacher), groups, "content_ssim"),
            **_group_means(psnr(matched, teacher), groups, "histmatch_psnr"),
            **_group_means(ssim(matched, teacher), groups, "histmatch_ssim"),
        }

    def _grid(self, result: dict[str, torch.Tensor]) -> Any:
        from ..images import image_grid

        columns = ["content", "style", "teacher", "student"]
        rows = min(self.grid_rows, len(result["student"]))
        return image_grid(
            [[result[c][i] for c in columns] for i in range(rows)],
            column_labels=columns,
            captions=[
                ["", "", "", f"{float(result['psnr'][i]):.2f} dB ({self.groups[i]})"]
                for i in range(rows)
            ],
            cell_size=self.grid_cell,
        )
