"""The StyleID distillation recipe: how the pretrained student ``styleid-small`` is made.

Real StyleID outputs are few (each costs seconds on a big GPU), so the student learns in
two stages, both with the same losses (MobileNetV2 features: LPIPS-style distance and
feature statistics, plus pixel L1; never the network that scores it):

1. **pretrain** on thousands of pairs from the offline StyleID-like teacher
   (``gatys``: optimisation on MobileNetV2 features, which keeps the content's layout
   and repaints it with the style's statistics) over many photos (the scikit-image
   photos bundled offline, and crops of them) and many styles (generated painting
   styles at several seeds, plus the real style images given): what style transfer
   does in general;
2. **fine-tune** from that student (``train --init``) on the real StyleID pairs, at the
   teacher's own scale (256 px crops of the 512 px images): what StyleID does.

``bench/styleid_real.py`` runs it on a split of the real pairs and scores it on contents
and styles it never saw; ``scripts/train_pretrained.py`` runs it on all of them and
ships the result. Each function reuses what an earlier run left, so a killed run goes on.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .images import center_crop_resize, load_image, save_image, square_crops
from .train.config import TrainConfig

__all__ = [
    "FOLDS",
    "OFFLINE_PHOTOS",
    "Fold",
    "Recipe",
    "distil_styleid",
    "finetune_config",
    "held_out_pairs",
    "import_styleid_pairs",
    "offline_inputs",
    "pretrain_config",
    "styleid_real_paths",
    "teach_offline",
]

#: scikit-image's bundled photos (public domain / CC0) the offline pairs start from;
#: chelsea, coffee, motorcycle_left and brick stay out: bench/distill_quality.py tests on them.
OFFLINE_PHOTOS = (
    "astronaut.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "camera.png",
    "coins.png",
    "moon.png",
    "page.png",
    "grass.png",
    "gravel.png",
    "ihc.png",
    "clock_motion.png",
    "color.png",
    "cell.png",
)


@dataclass(frozen=True)
class Recipe:
    """The recipe's sizes; the defaults fill 60 minutes of training on a 2-core CPU."""

    #: Square crops per photo (the whole photo, then zoomed-in corners).
    crops: int = 5
    #: Seeds of each generated painting style.
    style_seeds: int = 3
    #: Random styles per content in the offline pairs.
    styles_per_content: int = 4
    #: Side of the offline pairs.
    offline_size: int = 256
    pretrain_minutes: float = 20.0
    pretrain_steps: int = 1500
    finetune_minutes: float = 40.0
    finetune_steps: int = 3000
    batch_size: int = 4
    seed: int = 0


def offline_inputs(
    out: str | os.PathLike,
    *,
    contents: Sequence[str | os.PathLike] = (),
    styles: Sequence[str | os.PathLike] = (),
    recipe: Recipe = Recipe(),
) -> tuple[Path, Path]:
    """Write the offline pairs' inputs into ``out/contents`` and ``out/styles``: crops of
    the bundled photos and of ``contents``; the generated styles at several seeds and
    ``styles`` (centre-cropped). Files already there are kept."""
    from .samples import STYLE_NAMES, generate_style, skimage_data_dir

    out = Path(out)
    content_dir, style_dir = out / "contents", out / "styles"
    side = 2 * recipe.offline_size  # enough pixels for the teacher's own resize
    photos: list[tuple[str, Path]] = [
        (Path(name).stem, skimage_data_dir() / name) for name in OFFLINE_PHOTOS
    ]
    photos += [(f"given_{Path(p).stem}", Path(p)) for p in contents]
    for name, path in photos:
        targets = [content_dir / f"{name}_{i}.png" for i in range(recipe.crops)]
        if all(t.is_file() for t in targets):
            continue
        for target, crop in zip(targets, square_crops(load_image(path), recipe.crops)):
            save_image(center_crop_resize(crop, side), target)
    for name in STYLE_NAMES:
        for seed in range(recipe.style_seeds):
            target = style_dir / f"{name}_s{seed}.png"
            if not target.is_file():
                save_image(generate_style(name, side, seed), target)
    for path in styles:
        target = style_dir / f"given_{Path(path).stem}.png"
        if not target.is_file():
            save_image(center_crop_resize(load_image(path), side), target)
    return content_dir, style_dir


def teach_offline(
    inputs: tuple[Path, Path],
    out: str | os.PathLike,
    *,
    recipe: Recipe = Recipe(),
    progress: bool = True,
) -> Path:
    """The offline pairs: the ``gatys`` teacher on the inputs (resumes where it stopped)."""
    from .dataset.writer import teach
    from .teachers import create_teacher

    teacher = create_teacher("gatys", size=recipe.offline_size)
    teach(
        teacher,
        inputs[0],
        inputs[1],
        out,
        styles_per_content=recipe.styles_per_content,
        seed=recipe.seed,
        show_progress=progress,
    )
    return Path(out)


#: The optimiser settings both stages share (chosen on bench/styleid_real.py's split); the
#: losses are TrainConfig's defaults (pixel L1, MobileNetV2 feature distance and feature
#: statistics, 1 each).
_SHARED: dict[str, Any] = {
    "preset": "sttr-small",
    "size": 256,
    "lr": 1e-3,
    "backbone_lr": 1e-4,
    "warmup": 100,
    "num_workers": 1,
}


def pretrain_config(
    data: str | os.PathLike, out: str | os.PathLike, *, recipe: Recipe = Recipe(), **extra: Any
) -> TrainConfig:
    """Stage 1: sttr-small from ImageNet tokenizers on the offline pairs."""
    return _stage_config(data, out, recipe, recipe.pretrain_steps, recipe.pretrain_minutes, extra)


def finetune_config(
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    init: str | os.PathLike,
    val_data: str | os.PathLike | None = None,
    recipe: Recipe = Recipe(),
    **extra: Any,
) -> TrainConfig:
    """Stage 2: from the pretrained student, on real StyleID pairs at the teacher's scale
    (crops of half the 512 px images' side, not resized)."""
    stage = {
        "init": str(init),
        "val_data": None if val_data is None else str(val_data),
        "crop_scale": [0.5, 0.5],
    }
    return _stage_config(
        data, out, recipe, recipe.finetune_steps, recipe.finetune_minutes, {**stage, **extra}
    )


def _stage_config(
    data: str | os.PathLike,
    out: str | os.PathLike,
    recipe: Recipe,
    steps: int,
    minutes: float,
    extra: dict[str, Any],
) -> TrainConfig:
    """A stage's TrainConfig: its length, evaluated 3 and saved 6 times, and the shared
    settings (``extra`` over them)."""
    return TrainConfig(
        data=str(data),
        out=str(out),
        steps=steps,
        max_minutes=minutes,
        batch_size=recipe.batch_size,
        seed=recipe.seed,
        eval_every=max(1, steps // 3),
        save_every=max(1, steps // 6),
        **{**_SHARED, **extra},
    )


# ---------------------------------------------------------------- the real StyleID pairs


@dataclass(frozen=True)
class Fold:
    """A split of the ``styleid_real`` pairs (contents 00-03 x styles 00-15) by content AND
    by style, so that some contents and some styles are never trained on."""

    train_contents: tuple[int, ...]
    test_contents: tuple[int, ...]
    train_styles: tuple[int, ...]
    val_styles: tuple[int, ...]
    test_styles: tuple[int, ...]

    def pairs(self, role: str) -> list[tuple[int, int]]:
        """(content, style) indices of ``role``: train, val, unseen_content, unseen_style,
        unseen_both; ``all`` is every pair."""
        if role == "all":
            return [(c, s) for c in range(4) for s in range(16)]
        if role == "train":
            return [(c, s) for c in self.train_contents for s in self.train_styles]
        if role == "val":
            return [(c, s) for c in self.train_contents for s in self.val_styles]
        contents = self.test_contents if role != "unseen_style" else self.train_contents
        styles = self.test_styles if role != "unseen_content" else self.train_styles
        return [(c, s) for c in contents for s in styles]


FOLDS = {
    "A": Fold((0, 1, 2), (3,), tuple(range(10)), (10, 11), (12, 13, 14, 15)),
    "B": Fold((1, 2, 3), (0,), tuple(range(6, 16)), (4, 5), (0, 1, 2, 3)),
}


def styleid_real_paths(
    data: str | os.PathLike, content: int, style: int
) -> tuple[Path, Path, Path]:
    """Content, style and StyleID output of one pair, as the official code names them."""
    data = Path(data)
    return (
        data / "contents" / f"{content:02d}.png",
        data / "styles" / f"{style:02d}.png",
        data / "stylized" / f"{content:02d}_stylized_{style:02d}.png",
    )


def import_styleid_pairs(
    data: str | os.PathLike, pairs: Sequence[tuple[int, int]], out: str | os.PathLike
) -> Path:
    """These pairs as a styledistill dataset (``dataset import`` of a pairs file)."""
    from .dataset.importer import import_pairs

    out = Path(out)
    listing = out.with_suffix(".csv")
    listing.parent.mkdir(parents=True, exist_ok=True)
    with open(listing, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["content", "style", "stylized"])
        writer.writerows([[str(p) for p in styleid_real_paths(data, c, s)] for c, s in pairs])
    import_pairs(out, contents=None, styles=None, pairs_file=listing, progress=False)
    return out


def distil_styleid(
    data: str | os.PathLike,
    work: str | os.PathLike,
    *,
    train_pairs: Sequence[tuple[int, int]],
    val_pairs: Sequence[tuple[int, int]] = (),
    recipe: Recipe = Recipe(),
) -> dict[str, Path]:
    """The whole recipe on these real pairs: offline inputs (the bundled photos plus the
    training contents; the generated styles plus the training styles), the offline
    teacher's pairs, pretraining, fine-tuning. Returns the two students' folders
    (``offline``: pretrained only; ``real``: fine-tuned). Each step reuses ``work``."""
    from .train import train

    work = Path(work)
    train_set = import_styleid_pairs(data, train_pairs, work / "real_train")
    val_set = import_styleid_pairs(data, val_pairs, work / "real_val") if val_pairs else None
    contents = sorted({c for c, _ in train_pairs})
    styles = sorted({s for _, s in train_pairs})
    offline_student = work / "offline_student" / "student"
    if not offline_student.is_dir():
        inputs = offline_inputs(
            work / "offline_inputs",
            contents=[styleid_real_paths(data, c, 0)[0] for c in contents],
            styles=[styleid_real_paths(data, 0, s)[1] for s in styles],
            recipe=recipe,
        )
        offline = teach_offline(inputs, work / "offline_pairs", recipe=recipe)
        train(pretrain_config(offline, work / "offline_student", recipe=recipe))
    real_student = work / "real_student" / "student"
    if not real_student.is_dir():
        config = finetune_config(
            train_set, work / "real_student", init=offline_student, val_data=val_set, recipe=recipe
        )
        train(config)
    return {"offline": offline_student, "real": real_student}


def held_out_pairs(
    dataset: str | os.PathLike, *, recipe: Recipe = Recipe()
) -> dict[str, list[tuple[Path, Path, Path]]]:
    """(content, style, StyleID output) of the pairs of an imported ``dataset`` that a
    fine-tune without ``val_data`` holds out: ``train``'s own validation split (by content
    and by style, TrainConfig's ``val_fraction``, the recipe's seed), grouped by what the
    student saw (``unseen_content``, ``unseen_style``, ``unseen_both``, ``seen``)."""
    from .dataset.reader import read_manifest
    from .train.data import split

    _, val_keys, groups = split(Path(dataset), TrainConfig.val_fraction, recipe.seed)
    records = {r["key"]: r for r in read_manifest(dataset)}
    found: dict[str, list[tuple[Path, Path, Path]]] = {}
    for key in val_keys:
        record = records[key]
        triple = (
            Path(record["content"]),
            Path(record["style"]),
            Path(record["imported"]["source"]),
        )
        found.setdefault(groups[key], []).append(triple)
    return dict(sorted(found.items()))
