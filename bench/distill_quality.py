"""Benchmark: does the student learn its teacher? Measured on pairs it never saw.

Steps (each reused when already done, so the script can be rerun to continue or rescore):

1. inputs: contents = the offline sample photos + other scikit-image photos; styles = the
   generated style families (``styledistill.samples``) at many seeds, 256 px. Held out:
   ``--eval-contents`` photos and the last ``--eval-seeds`` seeds of every family (and,
   with ``--paintings DIR``, real paintings: never used in training).
2. dataset: ``styledistill teach --teacher gatys`` (``--teacher``) on train contents x
   train styles.
3. eval set: the teacher on held-out contents x held-out styles (the target; the texture
   teacher also runs with another seed: the floor, nothing is closer than its own noise;
   gatys has no noise, so its floor is zero distance).
4. training: the first stage of ``styledistill.recipes`` (its losses and optimiser) for
   ``--minutes`` of wall time (one run per ``--variant``; variants change preset
   settings). ``--student NAME=DIR`` scores a student trained elsewhere instead, e.g. the
   offline-pairs student of ``bench/styleid_real.py`` (whose photos exclude the held-out
   ones and whose generated styles use seeds 0-2 only).
5. scoring, against the teacher's output: PSNR, SSIM, and two perceptual distances on
   EfficientNet-Lite0 (``styledistill.metrics.perceptual``; a network that trains
   nothing here): ``feature`` (LPIPS-style) and ``style`` (feature mean/std). Rows:
   raw content, content histogram-matched to the style (the simple baseline), each
   student (``--untrained`` adds sttr-small before training), and the floor.
   ``closed`` = how much of the distance from the baseline to the floor a student
   removes. Students run at the teacher's size, as ``styledistill evaluate`` runs them.

    python bench/distill_quality.py --work /tmp/dq --untrained      # 20 min of training
    python bench/distill_quality.py --work /tmp/dq --untrained \
        --student offline=/tmp/sr/foldA/offline_student/student
    python bench/distill_quality.py --work /tmp/dq --score-only --untrained --grid docs/distill_quality.jpg
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from styledistill.benchmark import machine_line

EXTRA_CONTENTS = (  # scikit-image bundled photos (no download), beyond styledistill.samples
    "camera.png",
    "coins.png",
    "moon.png",
    "motorcycle_left.png",
    "page.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "ihc.png",
    "clock_motion.png",
)
EVAL_CONTENTS = ("chelsea", "coffee", "motorcycle_left", "brick")


def make_inputs(work: Path, args: argparse.Namespace) -> dict[str, Path]:
    """Train/eval content and style folders (written once)."""
    import skimage

    from styledistill.images import load_image, resize_long_side, save_image
    from styledistill.samples import STYLE_NAMES, generate_style, sample_contents

    folders = {name: work / "inputs" / name for name in ("train_c", "train_s", "eval_c", "eval_s")}
    if not folders["eval_s"].is_dir():
        photos = dict(sample_contents(512))
        data = Path(skimage.__file__).parent / "data"
        for file in EXTRA_CONTENTS:
            photos[Path(file).stem] = resize_long_side(load_image(data / file), 512)
        for name, image in photos.items():
            role = "eval_c" if name in args.eval_contents else "train_c"
            save_image(image, folders[role] / f"{name}.png")
        for seed in range(args.style_seeds):
            role = "eval_s" if seed >= args.style_seeds - args.eval_seeds else "train_s"
            for name in STYLE_NAMES:
                save_image(generate_style(name, 256, seed), folders[role] / f"{name}_s{seed}.png")
    return folders


def teach_command(contents: Path, styles: Path, out: Path, args: argparse.Namespace) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "styledistill",
        "teach",
        "--teacher",
        args.teacher,
        "--contents",
        str(contents),
        "--styles",
        str(styles),
        "--out",
        str(out),
        "--size",
        str(args.teacher_size),
        "--seed",
        "0",
        "--no-progress",
        "--threads",
        "1",
    ]
    for option in args.teacher_option:
        command += ["--teacher-option", option]
    return command


def run_shards(command: list[str], shards: int) -> None:
    procs = [
        subprocess.Popen([*command, "--num-shards", str(shards), "--shard-index", str(i)])
        for i in range(shards)
    ]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"teach failed with exit codes {codes}")


def make_dataset(work: Path, folders: dict[str, Path], args: argparse.Namespace) -> Path:
    out = work / "data"
    start = time.time()
    command = teach_command(folders["train_c"], folders["train_s"], out, args)
    run_shards([*command, "--styles-per-content", str(args.styles_per_content)], args.shards)
    print(f"dataset: {out} ready in {time.time() - start:.0f} s", flush=True)
    return out


def make_eval_set(work: Path, folders: dict[str, Path], args: argparse.Namespace) -> list[dict]:
    """Teacher outputs (seed 0: target; seed 1: floor) for every held-out pair. A teacher
    without noise (gatys) is its own floor: it runs once."""
    from styledistill.images import list_images, save_image
    from styledistill.teachers import create_teacher

    index = work / "eval" / "pairs.json"
    if index.is_file():
        return json.loads(index.read_text())
    options = {}
    for item in args.teacher_option:
        key, _, value = item.partition("=")
        options[key] = json.loads(value)
    styles = list_images(folders["eval_s"]) + (
        list_images(args.paintings) if args.paintings else []
    )
    contents = list_images(folders["eval_c"])
    pairs = []
    start = time.time()
    for seed in (0, 1) if args.teacher == "texture" else (0,):
        teacher = create_teacher(args.teacher, size=args.teacher_size, seed=seed, **options)
        for style in styles:
            prepared = teacher.prepare_style(style)
            outputs = teacher.stylize(contents, [prepared] * len(contents))
            for content, output in zip(contents, outputs):
                key = f"{content.stem}__{style.stem}"
                save_image(output, work / "eval" / f"seed{seed}" / f"{key}.png")
                if seed == 0:
                    painting = args.paintings is not None and style.parent == Path(args.paintings)
                    pairs.append(
                        {
                            "key": key,
                            "content": str(content),
                            "style": str(style),
                            "group": "paintings" if painting else "generated",
                        }
                    )
    index.write_text(json.dumps(pairs, indent=1))
    print(f"eval set: {len(pairs)} pairs in {time.time() - start:.0f} s")
    return pairs


def run_training(work: Path, data: Path, name: str, overrides: list[str], args) -> Path:
    """The recipe's first stage (``styledistill.recipes.pretrain_config``): the same losses
    and optimiser the pretrained student was made with; ``overrides`` change the model."""
    from styledistill.recipes import Recipe, pretrain_config
    from styledistill.train import train

    run = work / f"run-{name}"
    if (run / "student" / "config.json").is_file():
        print(f"training: reusing {run}/student", flush=True)
        return run
    model = {}
    for option in overrides:
        key, _, value = option.partition("=")
        model[key] = json.loads(value)
    recipe = Recipe(pretrain_minutes=args.minutes, pretrain_steps=args.steps)
    config = pretrain_config(
        data,
        run,
        recipe=recipe,
        model_overrides=model,
        resume=(run / "checkpoints").is_dir(),
        progress=False,
        tensorboard=False,
    )
    start = time.time()
    train(config)
    print(f"training {name}: {time.time() - start:.0f} s", flush=True)
    return run


def score(work: Path, pairs: list[dict], runs: dict[str, Path], args) -> dict:
    """Distances of every row to the teacher's output, per pair group (see metrics.distillation)."""
    from styledistill.images import center_crop_resize, image_grid, load_image
    from styledistill.metrics.distillation import score_distillation, summarize
    from styledistill.metrics.perceptual import EfficientNetLite0, PerceptualDistance
    from styledistill.student import Stylizer

    distance = PerceptualDistance(EfficientNetLite0.from_file())
    stylizers = {
        name: Stylizer.from_pretrained(run / "student", device="cpu") for name, run in runs.items()
    }
    stylizers.update(
        {name: Stylizer.from_pretrained(source, device="cpu") for name, source in args.students}
    )
    students = {
        # at the teacher's size, as `evaluate` and the demo run it (not the stylizer's 512)
        name: (lambda c, s, st=stylizer: st.stylize_tensor(c, s, size=args.teacher_size))
        for name, stylizer in stylizers.items()
    }

    floor = Path("eval") / ("seed1" if (work / "eval" / "seed1").is_dir() else "seed0")

    def images():
        for pair in pairs:
            yield (
                center_crop_resize(load_image(pair["content"]), args.teacher_size),
                load_image(pair["style"]),
                load_image(work / "eval" / "seed0" / f"{pair['key']}.png"),
                load_image(work / floor / f"{pair['key']}.png"),
            )

    examples: list[list] = []
    shown = {p["style"] for p in pairs if p["style"].endswith(f"_s{args.style_seeds - 1}.png")}

    def keep(index: int, outputs: dict) -> None:
        pair = pairs[index]
        painting = pair["group"] == "paintings"
        wanted = args.grid_rows - (2 if args.paintings else 0)
        if (pair["style"] in shown and len(examples) < wanted) or (
            painting and len(examples) < args.grid_rows and pair["content"].endswith("chelsea.png")
        ):
            content, *rest = outputs.values()
            teacher = load_image(work / "eval" / "seed0" / f"{pair['key']}.png")
            examples.append([content, load_image(pair["style"]), *rest, teacher])

    per_pair = score_distillation(images(), students, distance, keep=keep if args.grid else None)
    groups = [p["group"] for p in pairs]
    result: dict = {"pairs": len(pairs), "groups": {}}
    for group in ["all", *sorted(set(groups))]:
        chosen = [s for s, g in zip(per_pair, groups) if group in ("all", g)]
        if group == "all" or len(set(groups)) > 1:
            result["groups"][group] = summarize(chosen)
    if args.grid and examples:
        rows = list(result["groups"]["all"].rows)
        grid = image_grid(
            examples,
            column_labels=["content", "style", *rows[1:], "teacher"],
            cell_size=200,
            title="held-out photos x unseen styles: the student beside the baseline and the teacher",
        )
        save_picture(grid, Path(args.grid))
    return result


def save_picture(picture, path: Path) -> None:
    from styledistill.plumbing import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=path.suffix) as tmp:
        picture.save(tmp, quality=88)
    print(f"grid: {path}")


def save_untrained(work: Path) -> Path:
    """sttr-small as training starts (ImageNet tokenizers, nothing learned yet): the row
    that shows what training adds to the texture head's one synthesis pass."""
    from styledistill.student import STTR

    run = work / "run-untrained"
    if not (run / "student" / "config.json").is_file():
        torch.manual_seed(0)
        STTR.from_preset("sttr-small", backbone_weights="imagenet").save_pretrained(run / "student")
    return run


def format_report(result: dict, runs: dict[str, Path], students: list[tuple[str, str]]) -> str:
    lines = []
    for group, table in result["groups"].items():
        lines += ["", f"held-out pairs: {group} ({table.count})", ""]
        lines += table.markdown([*runs, *(name for name, _ in students)])
    for name, run in [*runs.items(), *((n, Path(folder).parent) for n, folder in students)]:
        if not (run / "log.jsonl").is_file():
            continue  # not trained (the untrained row)
        records = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
        end = [r for r in records if r["type"] == "end"][-1]
        start = next(r for r in records if r["type"] == "start")
        lines.append(
            f"\n{name}: {start['train_pairs']} training pairs, {end['step']} steps in "
            f"{end['minutes']:.1f} min, loss network {start.get('loss_network', '?')}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/distill_quality"))
    parser.add_argument("--style-seeds", type=int, default=8, help="seeds per style family")
    parser.add_argument("--eval-seeds", type=int, default=2, help="last seeds held out")
    parser.add_argument("--eval-contents", nargs="+", default=list(EVAL_CONTENTS))
    parser.add_argument("--paintings", type=Path, help="real paintings, held out (eval only)")
    parser.add_argument("--styles-per-content", type=int, default=24)
    parser.add_argument("--teacher", choices=("gatys", "texture"), default="gatys")
    parser.add_argument("--teacher-size", type=int, default=256)
    parser.add_argument("--teacher-option", action="append", default=[], metavar="KEY=JSON")
    parser.add_argument("--shards", type=int, default=2, help="parallel teach processes")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME[:KEY=VALUE,...]",
        help="a student to train and score (default: 'student', the preset as it is)",
    )
    parser.add_argument("--minutes", type=float, default=20.0, help="training wall time per run")
    parser.add_argument("--steps", type=int, default=1500, help="schedule length")
    parser.add_argument("--eval-every", type=int, default=400)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--grid", help="write a picture grid of held-out pairs here")
    parser.add_argument("--grid-rows", type=int, default=6)
    parser.add_argument("--score-only", action="store_true", help="score finished runs only")
    parser.add_argument(
        "--untrained", action="store_true", help="also score sttr-small before any training"
    )
    parser.add_argument("--json", type=Path, help="also write the scores as JSON")
    parser.add_argument(
        "--student",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="score a student trained elsewhere (no training run unless --variant is given)",
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    print(f"machine at start: {machine_line()}", flush=True)
    folders = make_inputs(args.work, args)
    args.students = [tuple(entry.split("=", 1)) for entry in args.student]
    variants = args.variant or ([] if args.students else ["student"])
    data = args.work / "data"
    if not args.score_only and variants:
        data = make_dataset(args.work, folders, args)
    pairs = make_eval_set(args.work, folders, args)
    runs = {}
    for spec in variants:
        name, _, options = spec.partition(":")
        overrides = [o for o in options.split(",") if o]
        if args.score_only:
            runs[name] = args.work / f"run-{name}"
        else:
            runs[name] = run_training(args.work, data, name, overrides, args)
    if args.untrained:
        runs = {"untrained": save_untrained(args.work), **runs}
    result = score(args.work, pairs, runs, args)
    print(f"\nmachine at end: {machine_line()}")
    print(format_report(result, runs, args.students), flush=True)
    if args.json:
        groups = {k: v.to_dict() for k, v in result["groups"].items()}
        args.json.write_text(json.dumps({"pairs": result["pairs"], "groups": groups}, indent=1))


if __name__ == "__main__":
    main()
