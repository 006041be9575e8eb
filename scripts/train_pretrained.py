"""Make the pretrained student ``styleid-small`` that ships inside the package.

It runs ``styledistill.recipes.distil_styleid`` on the real StyleID outputs in
``--data`` (default ``../shared/data/styleid_real``): offline pairs from the ``gatys``
teacher, pretraining, fine-tuning on the real pairs. ``--split all`` (the default, as
shipped) trains on all 64 pairs, once ``bench/styleid_real.py`` has chosen the recipe on
its fold A (the model card gives that run's figures); ``--split A`` trains on fold A's
training pairs only, so that the benchmark's figures are the student's own, on contents
and styles it never saw. The student is written to
``src/styledistill/pretrained_students/styleid-small`` (config.json, model.safetensors
and a model card README.md naming data, teacher, recipe and the benchmark's figures).

    python scripts/train_pretrained.py                       # as shipped: about 75 min on 2 cores
    python scripts/train_pretrained.py --split A --work /tmp/sr   # reuse bench/styleid_real.py's run

With ``--work`` of a finished ``bench/styleid_real.py`` run (same layout) it trains nothing
and copies that run's student, with the figures of its ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "styleid_real"
NAME = "styleid-small"
#: The recipe's figures on its split, in the model card of a student trained on all pairs.
FOLD_A_RESULTS = REPO / "bench" / "styleid_real_foldA.json"


def training_summary(run: Path) -> str:
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    start = next(r for r in records if r["type"] == "start")
    end = [r for r in records if r["type"] == "end"][-1]
    return f"{start['train_pairs']} pairs, {end['step']} steps in {end['minutes']:.1f} min"


def benchmark_lines(results_file: Path) -> list[str]:
    if not results_file.is_file():
        return ["(no bench/styleid_real.py results in --work yet)"]
    results = json.loads(results_file.read_text())
    lines = [
        "| test group | pairs | hist-matched | peer | this student | gain (feature / style) |",
        "|---|---|---|---|---|---|",
    ]
    for group, found in results.items():
        rows = found["rows"]
        student = rows["sttr-small, + real StyleID pairs"]
        peer = next(v for k, v in rows.items() if k.startswith("peer"))
        lines.append(
            f"| {group} | {found['pairs']} | +0.0% | {peer['gain']:+.1%} | "
            f"**{student['gain']:+.1%}** | {student['gain_feature']:+.0%} / "
            f"{student['gain_style']:+.0%} |"
        )
    return lines


def held_out_line(dataset: Path) -> str:
    """Which real pairs a fine-tune without --val-data held out, in words."""
    from styledistill.recipes import held_out_pairs

    held = held_out_pairs(dataset)
    count = sum(len(v) for v in held.values())
    groups = ", ".join(f"{len(v)} {k}" for k, v in held.items())
    contents = sorted(
        {c.stem for g in ("unseen_content", "unseen_both") for c, _, _ in held.get(g, [])}
    )
    styles = sorted(
        {s.stem for g in ("unseen_style", "unseen_both") for _, s, _ in held.get(g, [])}
    )
    return (
        f"{count} pairs ({groups}): content {', '.join(contents) or '-'} and style "
        f"{', '.join(styles) or '-'} are in no real pair it fine-tuned on (the offline "
        "pretraining pairs hold every content and style)"
    )


def model_card(args: argparse.Namespace, fold, work: Path, recipe) -> str:
    split = (
        "all 64 pairs imported (contents 00-03 x styles 00-15); the fine-tune's own "
        f"validation split held out {held_out_line(work / 'real_train')}"
        if args.split == "all"
        else f"fold {args.split}'s training pairs only: contents "
        f"{', '.join(f'{c:02d}' for c in fold.train_contents)} x styles "
        f"{fold.train_styles[0]:02d}-{fold.train_styles[-1]:02d} (validation: styles "
        f"{', '.join(f'{s:02d}' for s in fold.val_styles)}); never content "
        f"{', '.join(f'{c:02d}' for c in fold.test_contents)} nor styles "
        f"{fold.test_styles[0]:02d}-{fold.test_styles[-1]:02d}"
    )
    return "\n".join(
        [
            f"# {NAME}",
            "",
            "sttr-small distilled from real StyleID outputs (Stable Diffusion 1.4, the official",
            "code's defaults: gamma 0.75, tau 1.5, 50 DDIM steps, 512 px).",
            "",
            "- teacher: StyleID (real outputs, imported with `styledistill dataset import`);",
            "  pretraining teacher: `gatys` (offline, MobileNetV2)",
            "- data: `styleid_real`, MS-COCO contents x WikiArt styles; real pairs used: " + split,
            f"- pretraining: {training_summary(work / 'offline_student')} (gatys pairs on the "
            "bundled scikit-image photos and generated styles, plus the training contents and "
            "styles)",
            f"- fine-tuning: {training_summary(work / 'real_student')} (256 px crops of the "
            "512 px pairs" + (")" if args.split == "all" else ", scored on the validation pairs)"),
            f"- recipe: `styledistill.recipes`, {recipe}; losses: pixel L1 1, "
            "MobileNetV2 feature distance 1, feature statistics 1",
            "- made by: `python scripts/train_pretrained.py`",
            "",
            "## bench/styleid_real.py (distance to StyleID's output, EfficientNet-Lite0)",
            "",
            "gain = share of the histogram-matched content's distance removed (mean of the",
            "feature and style-statistics distances); test contents and styles never trained on.",
            *(
                [
                    "This student's own held-out pairs (above) are scored by",
                    "`python bench/styleid_real.py --work W --shipped-held-out` (bench/RESULTS.md).",
                    "The table is the same recipe on fold A (a student trained on fold A's",
                    "training pairs only; `bench/styleid_real_foldA.json`).",
                ]
                if args.split == "all"
                else []
            ),
            "",
            *benchmark_lines(FOLD_A_RESULTS if args.split == "all" else work / "results.json"),
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="styleid_real folder")
    parser.add_argument("--work", type=Path, default=Path("/tmp/styleid_pretrained"))
    parser.add_argument("--split", choices=("A", "B", "all"), default="all")
    parser.add_argument(
        "--out", type=Path, help="where to write the student (default: inside the package)"
    )
    args = parser.parse_args()

    from styledistill.errors import StyledistillError
    from styledistill.hub import PRETRAINED_DIR
    from styledistill.recipes import FOLDS, Recipe, distil_styleid
    from styledistill.student import STTR

    if not (args.data / "stylized").is_dir():
        print(f"error: --data {args.data}: no stylized/ folder", file=sys.stderr)
        return 2
    fold = FOLDS.get(args.split, FOLDS["A"])
    work = args.work / (f"fold{args.split}" if args.split != "all" else "all")
    recipe = Recipe()
    try:
        train_pairs = fold.pairs("all" if args.split == "all" else "train")
        val_pairs = [] if args.split == "all" else fold.pairs("val")
        students = distil_styleid(
            args.data, work, train_pairs=train_pairs, val_pairs=val_pairs, recipe=recipe
        )
        student = STTR.from_pretrained(students["real"])
    except StyledistillError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    out = args.out or PRETRAINED_DIR / NAME
    student.save_pretrained(out)
    (out / "README.md").write_text(model_card(args, fold, work, recipe))
    print(f"{NAME} -> {out} ({student.num_parameters():,} parameters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
