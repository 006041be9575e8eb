"""Benchmark: distil the texture teacher into sttr-small on this CPU, bounded time.

Steps (each skipped when already done, so the script can be rerun to continue):

1. inputs: the offline sample photos (styledistill.samples) plus scikit-image's other
   bundled photos as contents; the generated styles at several seeds as styles.
2. dataset: ``styledistill teach --teacher texture`` at 256 px, K random styles per
   content, written by ``--shards`` parallel processes (one thread each).
3. training: ``styledistill train`` with sttr-small for ``--minutes`` of wall time.
4. report: PSNR/SSIM to the teacher on held-out pairs (unseen contents and/or unseen
   styles) for the student and two baselines (the content itself, and the content
   histogram-matched to the style), printed as a table with the machine and its load.

    python bench/train_small.py --work /tmp/bench_train          # ~1 min data + 12 min training
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

EXTRA_CONTENTS = (  # scikit-image bundled photos (no download), beyond styledistill.samples
    "camera.png",
    "coins.png",
    "moon.png",
    "ihc.png",
    "motorcycle_left.png",
    "cell.png",
    "page.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "clock_motion.png",
    "text.png",
)


def machine() -> str:
    load = os.getloadavg()
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}"
    )


def make_inputs(work: Path, style_seeds: int) -> tuple[Path, Path]:
    import skimage

    from styledistill.images import load_image, resize_long_side, save_image
    from styledistill.samples import STYLE_NAMES, generate_style, sample_contents

    contents, styles = work / "contents", work / "styles"
    if not contents.is_dir():
        for name, image in sample_contents(512).items():
            save_image(image, contents / f"{name}.png")
        data = Path(skimage.__file__).parent / "data"
        for file in EXTRA_CONTENTS:
            image = resize_long_side(load_image(data / file), 512)
            save_image(image, contents / f"{Path(file).stem}.png")
    if not styles.is_dir():
        for seed in range(style_seeds):
            for name in STYLE_NAMES:
                save_image(generate_style(name, 256, seed), styles / f"{name}_s{seed}.png")
    return contents, styles


def make_dataset(work: Path, contents: Path, styles: Path, args: argparse.Namespace) -> Path:
    out = work / "data"
    if (out / "dataset.json").is_file():
        from styledistill.dataset import dataset_info

        info = dataset_info(out)
        if info["pairs_done"] and info["pairs_done"] == info["pairs_planned"]:
            print(f"dataset: reusing {out} ({info['pairs_done']} pairs)", flush=True)
            return out
    command = [
        sys.executable,
        "-m",
        "styledistill",
        "teach",
        "--teacher",
        "texture",
        "--contents",
        str(contents),
        "--styles",
        str(styles),
        "--out",
        str(out),
        "--size",
        "256",
        "--styles-per-content",
        str(args.styles_per_content),
        "--seed",
        "0",
        "--num-shards",
        str(args.shards),
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.time()
    procs = [
        subprocess.Popen([*command, "--shard-index", str(i)], env=env) for i in range(args.shards)
    ]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"teach failed with exit codes {codes}")
    print(f"dataset: {time.time() - start:.0f} s for {out}", flush=True)
    return out


def run_training(work: Path, data: Path, args: argparse.Namespace) -> Path:
    run = work / args.run_name
    command = [
        sys.executable,
        "-m",
        "styledistill",
        "train",
        "--data",
        str(data),
        "--out",
        str(run),
        "--preset",
        args.preset,
        "--steps",
        str(args.steps),
        "--batch-size",
        str(args.batch_size),
        "--lr",
        str(args.lr),
        "--backbone-lr",
        str(args.backbone_lr),
        "--warmup",
        str(args.warmup),
        "--clip",
        str(args.clip),
        "--size",
        str(args.size),
        "--max-minutes",
        str(args.minutes),
        "--val-fraction",
        str(args.val_fraction),
        "--eval-every",
        str(args.eval_every),
        "--save-every",
        str(args.eval_every),
        "--num-workers",
        "1",
        "--device",
        "cpu",
        "--ema",
        str(args.ema),
        "--perceptual-weight",
        "0",
        "--no-progress",
    ]
    for option in args.model_option:
        command += ["--model-option", option]
    if (run / "checkpoints").is_dir():
        command.append("--resume")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    start = time.time()
    subprocess.run(command, env=env, check=True)
    print(f"training: {time.time() - start:.0f} s", flush=True)
    return run


def report(run: Path) -> str:
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    start = next(r for r in records if r["type"] == "start")
    baseline = next(r for r in records if r["type"] == "baseline")
    final = [r for r in records if r["type"] == "eval"][-1]
    end = [r for r in records if r["type"] == "end"][-1]
    train_lines = [r for r in records if r["type"] == "train"]
    groups = ["", *sorted({k[len("psnr_") :] for k in final if k.startswith("psnr_")})]
    lines = [
        f"machine: {machine()}",
        f"pairs: {start['train_pairs']} train, {start['val_pairs']} held out "
        f"({start['val_scored']} scored); steps {end['step']} in {end['minutes']:.1f} min; "
        f"last train loss {train_lines[-1]['loss']:.4f}, "
        f"{train_lines[-1]['it_per_s']:.2f} it/s",
        "",
        "| held-out group | content PSNR | hist-matched PSNR | student PSNR | content SSIM | hist-matched SSIM | student SSIM |",
        "|---|---|---|---|---|---|---|",
    ]
    for group in groups:
        suffix = f"_{group}" if group else ""
        lines.append(
            f"| {group or 'all'} | {baseline['content_psnr' + suffix]:.2f} | "
            f"{baseline['histmatch_psnr' + suffix]:.2f} | {final['psnr' + suffix]:.2f} | "
            f"{baseline['content_ssim' + suffix]:.3f} | {baseline['histmatch_ssim' + suffix]:.3f} | "
            f"{final['ssim' + suffix]:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_train_small"))
    parser.add_argument(
        "--style-seeds", type=int, default=3, help="generated styles per style name"
    )
    parser.add_argument("--styles-per-content", type=int, default=16)
    parser.add_argument("--shards", type=int, default=2, help="parallel teach processes")
    parser.add_argument("--run-name", default="run")
    parser.add_argument("--preset", default="sttr-small")
    parser.add_argument("--minutes", type=float, default=12.0)
    parser.add_argument(
        "--model-option",
        action="append",
        default=[],
        help="preset override passed to train, e.g. colour_transfer=meanstd (repeatable)",
    )
    parser.add_argument("--steps", type=int, default=500, help="schedule length (cosine ends here)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3, help="3e-3 diverged (NaN)")
    parser.add_argument(
        "--backbone-lr", type=float, default=1.5e-4, help="the MobileNet tokenizers"
    )
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--clip", type=float, default=0.5)
    parser.add_argument("--ema", type=float, default=0.99)
    parser.add_argument("--size", type=int, default=128, help="training crop and evaluation size")
    parser.add_argument("--val-fraction", type=float, default=0.25)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest on a busy CPU)"
    )
    parser.add_argument("--skip-train", action="store_true", help="only build the dataset")
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    print(f"machine at start: {machine()}", flush=True)
    contents, styles = make_inputs(args.work, args.style_seeds)
    data = make_dataset(args.work, contents, styles, args)
    if args.skip_train:
        return
    run = run_training(args.work, data, args)
    print(report(run), flush=True)


if __name__ == "__main__":
    main()
