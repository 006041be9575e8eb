"""``PairedDataset``: (content, style, target) training triples from a teach output folder."""

from __future__ import annotations

import multiprocessing
import os
import random
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..errors import ConfigError
from ..images import ImageError, center_crop_resize, load_image
from .reader import read_dataset_json, read_records

__all__ = ["PairedDataset"]

Box = tuple[float, float, float]  # top, left, side: fractions of the image side


class PairedDataset(Dataset):
    """Training triples ``(content, style, target)``, each float32 ``[3, size, size]`` in [0, 1].

    Content and style are preprocessed exactly as the teacher saw them (centre crop to
    the short side, LANCZOS to the teacher size), so the target lines up with the
    content pixel for pixel. With ``train=True`` content and target get the *same*
    random square crop (side ``crop_scale`` x the teacher size, but not below ``size``
    when the teacher image is that large) and the same horizontal flip; the style gets
    its own crop and flip. With ``train=False`` the whole image is resized to ``size``.
    The style is resized to ``style_size`` instead when given: the resolution the student
    sees styles at in use (``STTRConfig.style_size``), so that a small training crop
    does not teach its style branch on blurred, upsampled styles only.

    Inputs are read from the copies made by ``teach --copy-inputs`` when present, else
    from the source paths in the manifest, else from ``contents_dir``/``styles_dir``
    (or the folders in dataset.json) joined with the relative paths, so a dataset still
    works after its input folders move.

    Unreadable pairs (an input or the target missing, empty, truncated or not an image)
    are skipped with ``skip_unreadable=True`` (the default), so one damaged file does
    not stop a long training run: the ones found up front (targets checked chunk by
    chunk, inputs by header) are left out, and one that still fails to decode later is
    replaced by the next readable pair. :meth:`unreadable_pairs` lists them all,
    including those found inside DataLoader worker processes.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        size: int = 256,
        train: bool = True,
        keys: Iterable[str] | None = None,
        *,
        crop_scale: tuple[float, float] = (0.5, 1.0),
        flip: bool = True,
        contents_dir: str | os.PathLike | None = None,
        styles_dir: str | os.PathLike | None = None,
        style_size: int | None = None,
        skip_unreadable: bool = True,
    ) -> None:
        self.root = Path(root)
        self.size = int(size)
        self.style_size = int(style_size) if style_size else self.size
        self.train = train
        self.flip = flip
        if not 0 < crop_scale[0] <= crop_scale[1] <= 1:
            raise ConfigError(f"crop_scale must satisfy 0 < min <= max <= 1, got {crop_scale}")
        self.crop_scale = crop_scale
        plan = read_dataset_json(self.root)
        records, bad_lines = read_records(self.root)
        #: manifest lines that are not pair records, counted with the unreadable pairs
        self._bad_lines = {line.where(self.root): line.reason for line in bad_lines}
        if keys is not None:
            wanted = list(keys)
            by_key = {r["key"]: r for r in records}
            unknown = [k for k in wanted if k not in by_key]
            if unknown:
                raise ConfigError(
                    f"{self.root}: {len(unknown)} requested keys are not in the dataset "
                    f"(first: {unknown[0]})"
                )
            records = [by_key[k] for k in wanted]
        if not records:
            raise ConfigError(f"{self.root}: the dataset has no finished pairs")
        self.teacher_size = int(plan.get("size") or records[0]["sizes"]["output"][0])
        self.contents_dir = Path(contents_dir) if contents_dir else _dir(plan.get("contents"))
        self.styles_dir = Path(styles_dir) if styles_dir else _dir(plan.get("styles"))
        self.skip_unreadable = skip_unreadable
        #: key -> reason, for pairs found unreadable in this process
        self._unreadable: dict[str, str] = {}
        if skip_unreadable:
            records = self._readable(records)
            if not records:
                first = next(iter(self._unreadable.items()))
                raise ConfigError(
                    f"{self.root}: none of the dataset's pairs can be read "
                    f"(first: {first[0]}: {first[1]})"
                )
        self.records: list[dict[str, Any]] = records
        self.keys = [r["key"] for r in records]
        # One flag per record, shared with forked/spawned DataLoader workers, so pairs
        # that fail inside a worker are still counted by the training process.
        self._failed_in_use = multiprocessing.RawArray("b", len(records))

    def _readable(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records whose three images are there and intact; the rest go to unreadable."""
        from .reader import image_intact

        checked: dict[Path, str | None] = {}

        def problem(path: Path) -> str | None:
            if path not in checked:
                checked[path] = None if image_intact(path) else "missing, empty or corrupt image"
            return checked[path]

        kept = []
        for record in records:
            try:
                paths = [
                    self._input_path(record, "content"),
                    self._input_path(record, "style"),
                    self.root / record["output"],
                ]
            except ImageError as exc:
                self._unreadable[record["key"]] = exc.reason
                continue
            reason = next(
                (f"{path}: {why}" for path in paths if (why := problem(path)) is not None), None
            )
            if reason is None:
                kept.append(record)
            else:
                self._unreadable[record["key"]] = reason
        return kept

    def unreadable_pairs(self) -> dict[str, str]:
        """Pairs skipped so far (key -> reason): found up front or while training, and
        manifest lines that are not pair records (``shard-…/manifest.jsonl line N``)."""
        found = {**self._bad_lines, **self._unreadable}
        for index, failed in enumerate(self._failed_in_use):
            key = self.records[index]["key"]
            if failed and key not in found:
                found[key] = "could not be read during training"
        return found

    def __len__(self) -> int:
        return len(self.records)

    def _input_path(self, record: dict[str, Any], role: str) -> Path:
        copy = record.get(f"{role}_input")
        if copy and (self.root / copy).is_file():
            return self.root / copy
        source = Path(record[role])
        if source.is_file():
            return source
        folder = self.contents_dir if role == "content" else self.styles_dir
        rel = record.get(f"{role}_rel")
        if folder is not None and rel and (folder / rel).is_file():
            return folder / rel
        raise ImageError(
            source,
            f"{role} image of pair {record['key']} not found (moved? pass {role}s_dir= to "
            "PairedDataset, or make the dataset with --copy-inputs)",
        )

    def _teacher_view(self, path: Path) -> torch.Tensor:
        image = load_image(path, min_side=1)
        if tuple(image.shape[-2:]) == (self.teacher_size, self.teacher_size):
            return image
        return center_crop_resize(image, self.teacher_size)

    def _random_box(self, rng: random.Random, full: int) -> Box:
        low = max(self.crop_scale[0] * full, min(self.size, full * self.crop_scale[1]))
        side = rng.uniform(low, self.crop_scale[1] * full) / full
        return rng.uniform(0, 1 - side), rng.uniform(0, 1 - side), side

    def _crop(
        self, image: torch.Tensor, box: Box, flip: bool, size: int | None = None
    ) -> torch.Tensor:
        size = size or self.size
        height, width = image.shape[-2:]
        top, left, side = box
        y0, x0 = round(top * height), round(left * width)
        h = max(1, min(height - y0, round(side * height)))
        w = max(1, min(width - x0, round(side * width)))
        patch = image[:, y0 : y0 + h, x0 : x0 + w]
        if (h, w) != (size, size):
            patch = F.interpolate(
                patch.unsqueeze(0),
                size=(size, size),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )[0].clamp_(0.0, 1.0)
        if flip:
            patch = patch.flip(-1)
        return patch.contiguous()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not self.skip_unreadable:
            return self._item(index)
        for offset in range(len(self.records)):
            candidate = (index + offset) % len(self.records)
            if self._failed_in_use[candidate]:
                continue
            try:
                return self._item(candidate)
            except (ImageError, OSError) as exc:
                key = self.records[candidate]["key"]
                reason = getattr(exc, "reason", None) or str(exc)
                self._failed_in_use[candidate] = 1
                self._unreadable[key] = reason
                print(f"warning: skipped unreadable pair {key}: {reason}", file=sys.stderr)
        raise ConfigError(f"{self.root}: none of the dataset's pairs can be read any more")

    def _item(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        record = self.records[index]
        content = self._teacher_view(self._input_path(record, "content"))
        style = self._teacher_view(self._input_path(record, "style"))
        target = load_image(self.root / record["output"], min_side=1)
        if not self.train:
            whole: Box = (0.0, 0.0, 1.0)
            return (
                self._crop(content, whole, False),
                self._crop(style, whole, False, self.style_size),
                self._crop(target, whole, False),
            )
        # torch's RNG drives the choice, so DataLoader worker seeding and torch.manual_seed apply
        rng = random.Random(int(torch.randint(0, 2**62, (1,)).item()))
        box = self._random_box(rng, self.teacher_size)
        flip = self.flip and rng.random() < 0.5
        style_box = self._random_box(rng, self.teacher_size)
        style_flip = self.flip and rng.random() < 0.5
        return (
            self._crop(content, box, flip),
            self._crop(style, style_box, style_flip, self.style_size),
            self._crop(target, box, flip),
        )


def _dir(value: Any) -> Path | None:
    return Path(value) if value else None
