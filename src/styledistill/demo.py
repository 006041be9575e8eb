"""The offline end-to-end demo: the whole flow of design §2 on one CPU, no downloads.

samples (bundled photos + generated styles) -> texture teacher -> paired dataset ->
train ``sttr-small`` -> evaluate teacher vs student on held-out contents and styles ->
``report.html``. Every stage is the same public API the commands use; each stage
reuses what a previous run left (dataset pairs resume, a finished student is kept).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .images import center_crop_resize, load_image, save_image

#: Photos the student trains on (crops of them too) and photos it never sees.
TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "hubble_deep_field", "retina")
HELDOUT_PHOTOS = ("chelsea",)
#: Styles held out of training entirely (the rest train, at several seeds).
HELDOUT_STYLES = ("pointillism", "mosaic_tiles")
#: Styles seen in training that evaluation also reports, to compare seen vs unseen.
SEEN_EVAL_STYLES = ("swirling_flow", "stained_glass")


@dataclass(frozen=True)
class DemoPlan:
    """How big each stage is. ``full`` takes ~7 min on 2 CPU cores (target <= 10), ``quick`` ~2 min."""

    size: int
    crops_per_photo: int
    style_seeds: tuple[int, ...]
    styles_per_content: int
    train_size: int
    train_steps: int
    train_minutes: float
    batch_size: int
    lr: float
    eval_every: int
    #: The (random) MobileNet backbones learn slower than the rest: a high rate there
    #: destabilises a CPU run without making it better.
    backbone_lr: float = 1.5e-4


PLANS = {
    "full": DemoPlan(
        size=256,
        crops_per_photo=3,
        style_seeds=(0, 1),
        styles_per_content=4,
        train_size=128,
        train_steps=600,
        train_minutes=6.0,
        batch_size=8,
        lr=1e-3,
        eval_every=100,
    ),
    "quick": DemoPlan(
        size=128,
        crops_per_photo=1,
        style_seeds=(0,),
        styles_per_content=3,
        train_size=128,
        train_steps=150,
        train_minutes=1.0,
        batch_size=8,
        lr=1e-3,
        eval_every=50,
    ),
}


@dataclass
class DemoResult:
    out: Path
    report: Path
    student: Path
    dataset: Path
    pairs: int
    seconds: dict[str, float]
    metrics: dict[str, Any]


def _say(message: str) -> None:
    print(f"demo: {message}", file=sys.stderr, flush=True)


def _crop_boxes(height: int, width: int, count: int) -> list[tuple[int, int, int]]:
    """Square crops (top, left, side) at fixed spots: centre, then corners, zoomed in."""
    side = min(height, width)
    boxes = [((height - side) // 2, (width - side) // 2, side)]
    small = int(side * 0.6)
    spots = [(0, 0), (height - small, width - small), (0, width - small), (height - small, 0)]
    for top, left in spots[: max(0, count - 1)]:
        boxes.append((top, left, small))
    return boxes[:count]


def prepare_inputs(
    out: Path, plan: DemoPlan, *, seed: int = 0, progress: bool = True
) -> dict[str, Path]:
    """Write the demo's content/style folders (train and held-out); existing files are kept."""
    from tqdm.auto import tqdm

    from .samples import STYLE_NAMES, content_path, generate_style

    folders = {
        "train_contents": out / "inputs" / "train" / "contents",
        "train_styles": out / "inputs" / "train" / "styles",
        "eval_contents": out / "inputs" / "heldout" / "contents",
        "eval_styles": out / "inputs" / "heldout" / "styles",
    }
    work_size = plan.size * 2  # enough pixels for the teacher's centre crop + resize
    jobs: list[tuple[Path, Callable[[], Any]]] = []
    photo_sets = [
        (TRAIN_PHOTOS, folders["train_contents"], plan.crops_per_photo),
        (HELDOUT_PHOTOS, folders["eval_contents"], 1),
    ]
    for names, folder, crops in photo_sets:
        for name in names:
            paths = [folder / f"{name}_{index}.png" for index in range(crops)]
            if not all(path.is_file() for path in paths):
                photo = load_image(content_path(name))
                boxes = _crop_boxes(photo.shape[1], photo.shape[2], crops)
                for path, (top, left, side) in zip(paths, boxes):
                    crop = photo[:, top : top + side, left : left + side]
                    jobs.append((path, lambda c=crop: center_crop_resize(c, work_size)))
    train_styles = [name for name in STYLE_NAMES if name not in HELDOUT_STYLES]
    for name in train_styles:
        for style_seed in plan.style_seeds:
            path = folders["train_styles"] / f"{name}_s{seed + style_seed}.png"
            jobs.append((path, lambda n=name, s=seed + style_seed: generate_style(n, work_size, s)))
    for name in (*HELDOUT_STYLES, *SEEN_EVAL_STYLES):
        # held-out copies use a seed training never saw, so even seen styles are new images
        path = folders["eval_styles"] / f"{name}.png"
        jobs.append((path, lambda n=name: generate_style(n, work_size, seed + 100)))

    todo = [(path, make) for path, make in jobs if not path.is_file()]
    for path, make in tqdm(todo, desc="inputs", unit="img", disable=not progress or not todo):
        save_image(make(), path)
    return folders


def run_demo(
    out: str | Path = "styledistill-demo",
    *,
    quick: bool = False,
    device: str | None = None,
    seed: int = 0,
    progress: bool = True,
    retrain: bool = False,
    plan: DemoPlan | None = None,
) -> DemoResult:
    """Run every stage offline; returns where the report, dataset and student are."""
    from .dataset import teach
    from .evaluation import EvaluationSettings, evaluate
    from .teachers import TextureTeacher
    from .train import TrainConfig, latest_checkpoint, train

    plan = plan or PLANS["quick" if quick else "full"]
    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    _say(f"1/4 inputs: sample photos + generated styles -> {out / 'inputs'}")
    tick = time.perf_counter()
    folders = prepare_inputs(out, plan, seed=seed, progress=progress)
    seconds["inputs"] = time.perf_counter() - tick

    _say("2/4 teach: texture teacher (no weights) writes the paired dataset")
    tick = time.perf_counter()
    teacher = TextureTeacher(size=plan.size, seed=seed)
    dataset_dir = out / "dataset"
    summary = teach(
        teacher,
        folders["train_contents"],
        folders["train_styles"],
        dataset_dir,
        styles_per_content=plan.styles_per_content,
        seed=seed,
        batch_size=4,
        show_progress=progress,
    )
    _say(summary.line())
    seconds["teach"] = time.perf_counter() - tick

    _say("3/4 train: distil the teacher into sttr-small")
    tick = time.perf_counter()
    run_dir = out / "run"
    student_dir = run_dir / "student"
    if (student_dir / "config.json").is_file() and not retrain:
        _say(f"reusing the trained student in {student_dir} (pass --retrain to train again)")
    else:
        config = TrainConfig(
            data=str(dataset_dir),
            out=str(run_dir),
            preset="sttr-small",
            steps=plan.train_steps,
            max_minutes=plan.train_minutes,
            batch_size=plan.batch_size,
            lr=plan.lr,
            backbone_lr=plan.backbone_lr,
            warmup=min(30, plan.train_steps // 10),
            clip=0.5,
            size=plan.train_size,
            amp="none",
            ema=0.99,
            perceptual_weight=0.0,  # no VGG weights offline: pixel L1 to the teacher only
            eval_every=plan.eval_every,
            save_every=plan.eval_every,
            val_fraction=0.2,
            num_workers=0,
            seed=seed,
            device=device,
            progress=progress,
            resume=latest_checkpoint(run_dir) is not None and not retrain,
        )
        student_dir = Path(train(config))
    seconds["train"] = time.perf_counter() - tick

    _say("4/4 evaluate: teacher vs student on held-out contents and styles")
    tick = time.perf_counter()
    report_dir = out / "report"
    metrics = evaluate(
        EvaluationSettings(
            contents=folders["eval_contents"],
            styles=folders["eval_styles"],
            out=report_dir,
            checkpoint=student_dir,
            teacher=teacher,
            size=plan.size,
            metric_size=plan.size,
            device=device,
            batch_size=4,
            download_weights=False,
            title="styledistill demo: texture teacher vs sttr-small student (held-out contents)",
            progress=progress,
        )
    )
    seconds["evaluate"] = time.perf_counter() - tick
    seconds["total"] = time.perf_counter() - started
    result = DemoResult(
        out=out,
        report=report_dir / "report.html",
        student=student_dir,
        dataset=dataset_dir,
        pairs=summary.written + summary.already_done,
        seconds={k: round(v, 1) for k, v in seconds.items()},
        metrics=metrics,
    )
    (out / "demo.json").write_text(
        json.dumps(
            {
                "plan": asdict(plan),
                "seconds": result.seconds,
                "report": str(result.report),
                "student": str(result.student),
                "dataset": str(result.dataset),
            },
            indent=2,
        )
    )
    return result
