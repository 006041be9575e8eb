"""Does a student reproduce its teacher? Distances to the teacher's output, with baselines.

For each held-out pair every *row* is compared with the teacher's output:

- ``content``: the photo itself (the worst sensible answer);
- ``hist-matched``: the photo with each RGB channel's histogram matched to the style
  (the simplest baseline: the palette without the texture);
- the students;
- ``teacher re-run``: the teacher again with another seed (the floor: nothing can be
  closer to the teacher than its own noise).

Metrics: PSNR and SSIM, and the ``feature`` and ``style`` distances of
:class:`~styledistill.metrics.perceptual.PerceptualDistance` (EfficientNet-Lite0, a
network no part of styledistill trains against). :func:`closed` says how much of the
distance from the baseline to the floor a row removes: 0 = no better than histogram
matching, 1 = as close as the teacher is to itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..image_ops import histogram_matched
from .fidelity import psnr, ssim
from .perceptual import PerceptualDistance

__all__ = ["BASELINE", "FLOOR", "DistillationScore", "histogram_matched", "score_distillation"]

BASELINE = "hist-matched"
FLOOR = "teacher re-run"
METRICS = ("psnr", "ssim", "feature", "style")


@dataclass
class DistillationScore:
    """Mean metrics per row over the scored pairs (``rows[row][metric]``)."""

    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    count: int = 0

    def closed(self, row: str, metric: str) -> float:
        """Share of the baseline-to-floor distance that ``row`` removes (1 = at the floor)."""
        base, floor = self.rows[BASELINE][metric], self.rows[FLOOR][metric]
        if base == floor:
            return float("nan")
        return (base - self.rows[row][metric]) / (base - floor)

    def to_dict(self) -> dict[str, object]:
        students = [r for r in self.rows if r not in ("content", BASELINE, FLOOR)]
        return {
            "pairs": self.count,
            "rows": self.rows,
            "closed": {
                row: {m: self.closed(row, m) for m in ("feature", "style")} for row in students
            },
        }

    def markdown(self, students: Iterable[str]) -> list[str]:
        """A table: one line per row, the students' closed share in the last column."""
        students = set(students)
        lines = [
            "| row | PSNR dB | SSIM | feature dist | style dist | closed (feature / style) |",
            "|---|---|---|---|---|---|",
        ]
        for row, m in self.rows.items():
            gap = ""
            if row in students:
                gap = f"**{self.closed(row, 'feature'):.0%} / {self.closed(row, 'style'):.0%}**"
            lines.append(
                f"| {row} | {m['psnr']:.2f} | {m['ssim']:.3f} | {m['feature']:.4f} | "
                f"{m['style']:.4f} | {gap} |"
            )
        return lines


def score_distillation(
    pairs: Iterable[tuple[Tensor, Tensor, Tensor, Tensor]],
    students: Mapping[str, Callable[[Tensor, Tensor], Tensor]],
    distance: PerceptualDistance,
    *,
    keep: Callable[[int, dict[str, Tensor]], None] | None = None,
) -> list[dict[str, dict[str, float]]]:
    """Per-pair metrics of every row against the teacher.

    ``pairs`` yields ``(content, style, teacher, teacher_rerun)`` images ``[3,H,W]``
    (content already as the teacher saw it); ``students[name](content, style)`` returns
    that student's output at the content's size. ``keep(index, outputs)`` sees each pair's
    outputs (for picture grids). Average with :func:`summarize`.
    """
    scores = []
    for index, (content, style, teacher, rerun) in enumerate(pairs):
        outputs = {"content": content, BASELINE: histogram_matched(content, style)}
        for name, student in students.items():
            outputs[name] = student(content, style)
        outputs[FLOOR] = rerun
        batch = torch.stack(list(outputs.values())).float()
        targets = teacher[None].float().expand_as(batch)
        values = {"psnr": psnr(batch, targets), "ssim": ssim(batch, targets)}
        values.update(distance(batch, targets))
        scores.append(
            {row: {m: float(values[m][i]) for m in METRICS} for i, row in enumerate(outputs)}
        )
        if keep is not None:
            keep(index, outputs)
    return scores


def summarize(scores: list[dict[str, dict[str, float]]]) -> DistillationScore:
    """Mean of each metric per row over pairs."""
    result = DistillationScore(count=len(scores))
    if not scores:
        return result
    for row in scores[0]:
        result.rows[row] = {m: sum(pair[row][m] for pair in scores) / len(scores) for m in METRICS}
    return result
