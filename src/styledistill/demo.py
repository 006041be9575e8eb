"""The offline end-to-end demo: the whole flow on one CPU, no downloads.

samples (bundled photos + generated styles, or the user's own folders) -> texture
teacher -> paired dataset -> train ``sttr-small`` -> evaluate teacher vs student on
held-out contents and styles -> ``report.html``, plus the distillation score: how much
of the distance from histogram matching to the teacher's own re-run the student closes
(``metrics.distillation``). Every stage is the same public API the commands use; each
stage reuses what a previous run left (dataset pairs resume, a finished student is kept).
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .images import center_crop_resize, list_images, load_image, save_image, square_crops

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
    #: The pretrained MobileNetV2 tokenizers move ten times slower than the rest.
    backbone_lr: float = 1e-4
    #: Loss for the texture teacher's patch mosaics (MobileNetV2 features, ImageNet weights
    #: that ship offline): pixel L1 low, feature statistics over 2x2 tiles carry the texture.
    pixel_weight: float = 0.25
    perceptual_weight: float = 0.2
    texture_weight: float = 2.0
    texture_tiles: int = 2
    feature_weight: float = 0.0
    stats_weight: float = 0.0


PLANS = {
    "full": DemoPlan(
        size=256,
        crops_per_photo=3,
        style_seeds=(0, 1, 2, 3),
        styles_per_content=4,
        train_size=160,
        train_steps=360,
        train_minutes=6.0,
        batch_size=8,
        lr=5e-4,
        eval_every=120,
    ),
    "quick": DemoPlan(
        size=128,
        crops_per_photo=1,
        style_seeds=(0,),
        styles_per_content=3,
        train_size=128,
        train_steps=60,
        train_minutes=1.0,
        batch_size=8,
        lr=1e-3,
        eval_every=30,
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


def _input_folders(out: Path) -> dict[str, Path]:
    """Where the demo keeps its inputs: train and held-out contents and styles."""
    return {
        "train_contents": out / "inputs" / "train" / "contents",
        "train_styles": out / "inputs" / "train" / "styles",
        "eval_contents": out / "inputs" / "heldout" / "contents",
        "eval_styles": out / "inputs" / "heldout" / "styles",
    }


def prepare_inputs(
    out: Path, plan: DemoPlan, *, seed: int = 0, progress: bool = True
) -> dict[str, Path]:
    """Write the demo's content/style folders (train and held-out); existing files are kept."""
    from .runtime import progress_bar
    from .samples import STYLE_NAMES, content_path, generate_style

    folders = _input_folders(out)
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
                for path, crop in zip(paths, square_crops(photo, crops)):
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
    for path, make in progress_bar(
        todo, desc="inputs", unit="img", enabled=progress and bool(todo)
    ):
        save_image(make(), path)
    return folders


def user_images(source: str | Path, role: str) -> list[Path]:
    """The images of a user's ``--contents``/``--styles`` folder: at least two (one is held out)."""
    files = list_images(source) if Path(source).is_dir() else []
    if len(files) < 2:
        raise ConfigError(
            f"--{role} {source}: needs at least 2 images (one is held out for evaluation), "
            f"found {len(files)}"
        )
    return files


def user_inputs(
    out: Path, contents: str | Path, styles: str | Path, *, seed: int = 0
) -> dict[str, Path]:
    """The user's folders split for the demo: about a fifth of the contents and of the
    styles (at least one each, chosen by ``seed``) are held out for evaluation; the files
    are copied (never moved) into ``out/inputs``."""
    folders = _input_folders(out)
    for role, source in (("contents", contents), ("styles", styles)):
        files = user_images(source, role)
        held = set(random.Random(seed).sample(range(len(files)), max(1, len(files) // 5)))
        for index, path in enumerate(files):
            folder = folders[f"{'eval' if index in held else 'train'}_{role}"]
            target = folder / f"{index:04d}_{path.name}"  # unique even for a/x.png and b/x.png
            if not target.is_file():
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
    return folders


def distillation_score(
    teacher_outputs: Path,
    student_outputs: Path,
    folders: dict[str, Path],
    teacher: Any,
    size: int,
    picture: Path | None = None,
) -> dict[str, Any]:
    """How much of the histogram-matching-to-teacher-re-run distance the student closes.

    Reads the teacher's and the student's held-out outputs that ``evaluate`` saved, runs
    the teacher once more with another seed (the floor) and scores every row with
    EfficientNet-Lite0 (``metrics.distillation``); ``picture`` gets a grid of them.
    """
    import copy

    from .images import image_grid
    from .metrics.distillation import score_distillation, summarize
    from .metrics.perceptual import EfficientNetLite0, PerceptualDistance

    rerun = copy.copy(teacher)
    rerun.seed = teacher.seed + 1
    names = sorted(p.stem for p in teacher_outputs.glob("*.png"))
    styles = {p.stem: p for p in list_images(folders["eval_styles"])}
    contents = {p.stem: p for p in list_images(folders["eval_contents"])}

    def pairs():
        for name in names:
            content_name, style_name = name.split("__", 1)
            content = center_crop_resize(load_image(contents[content_name]), size)
            style = center_crop_resize(load_image(styles[style_name]), size)
            again = rerun.stylize([content], [rerun.prepare_style(style)])[0]
            yield content, style, load_image(teacher_outputs / f"{name}.png"), again

    saved = iter(names)
    rows: list[list[Any]] = []

    def keep(index: int, outputs: dict[str, Any]) -> None:
        if len(rows) < 4:
            content, *others = outputs.values()
            style = load_image(styles[names[index].split("__", 1)[1]])
            rows.append(
                [content, style, *others, load_image(teacher_outputs / f"{names[index]}.png")]
            )

    scores = score_distillation(
        pairs(),
        {"student": lambda c, s: load_image(student_outputs / f"{next(saved)}.png")},
        PerceptualDistance(EfficientNetLite0.from_file()),
        keep=keep,
    )
    result = summarize(scores)
    if picture is not None and rows:
        labels = ["content", "style", *list(result.rows)[1:], "teacher"]
        image_grid(rows, column_labels=labels, cell_size=192).save(picture)
    return result.to_dict()


def run_demo(
    out: str | Path = "styledistill-demo",
    *,
    quick: bool = False,
    device: str | None = None,
    seed: int = 0,
    progress: bool = True,
    retrain: bool = False,
    plan: DemoPlan | None = None,
    contents: str | Path | None = None,
    styles: str | Path | None = None,
    minutes: float | None = None,
) -> DemoResult:
    """Run every stage offline; returns where the report, dataset and student are.

    ``contents``/``styles``: the user's own folders instead of the bundled samples (both
    or neither); ``minutes``: the training budget instead of the plan's.
    """
    plan = _checked_plan(plan or PLANS["quick" if quick else "full"], contents, styles, minutes)
    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    with _timed(seconds, "inputs"):
        folders = _inputs_stage(out, plan, contents, styles, seed=seed, progress=progress)
    with _timed(seconds, "teach"):
        teacher, dataset_dir, summary = _teach_stage(out, plan, folders, seed, progress)
    with _timed(seconds, "train"):
        student_dir = _train_stage(
            out, plan, dataset_dir, device=device, seed=seed, progress=progress, retrain=retrain
        )
    with _timed(seconds, "evaluate"):
        report_dir, metrics = _evaluate_stage(
            out, plan, folders, student_dir, teacher, device=device, progress=progress
        )
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
    _write_demo_json(out / "demo.json", plan, result)
    return result


@contextlib.contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    """Record how long a stage of the demo took (``seconds[stage]``), for demo.json."""
    tick = time.perf_counter()
    yield
    seconds[stage] = time.perf_counter() - tick


def _checked_plan(
    plan: DemoPlan,
    contents: str | Path | None,
    styles: str | Path | None,
    minutes: float | None,
) -> DemoPlan:
    """``plan`` with the ``minutes`` budget applied, after every check that can fail
    before anything is written (both folders or neither, each with enough images)."""
    if (contents is None) != (styles is None):
        raise ConfigError("give both --contents and --styles (or neither, for the samples)")
    if minutes is not None:
        if minutes <= 0:
            raise ConfigError(f"--minutes must be > 0, got {minutes}")
        plan = replace(plan, train_minutes=minutes, train_steps=max(60, int(minutes * 60)))
    if contents is not None and styles is not None:
        user_images(contents, "contents")
        user_images(styles, "styles")
    return plan


def _inputs_stage(
    out: Path,
    plan: DemoPlan,
    contents: str | Path | None,
    styles: str | Path | None,
    *,
    seed: int,
    progress: bool,
) -> dict[str, Path]:
    """Stage 1: the user's folders split, or the sample photos and generated styles."""
    if contents is not None and styles is not None:
        _say(f"1/4 inputs: your folders, a fifth of each held out -> {out / 'inputs'}")
        return user_inputs(out, contents, styles, seed=seed)
    _say(f"1/4 inputs: sample photos + generated styles -> {out / 'inputs'}")
    return prepare_inputs(out, plan, seed=seed, progress=progress)


def _teach_stage(
    out: Path, plan: DemoPlan, folders: dict[str, Path], seed: int, progress: bool
) -> tuple[Any, Path, Any]:
    """Stage 2: the texture teacher writes the paired dataset (resuming a previous run's)."""
    from .dataset import teach
    from .teachers import TextureTeacher

    _say("2/4 teach: texture teacher (no weights) writes the paired dataset")
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
    return teacher, dataset_dir, summary


def _train_stage(
    out: Path,
    plan: DemoPlan,
    dataset_dir: Path,
    *,
    device: str | None,
    seed: int,
    progress: bool,
    retrain: bool,
) -> Path:
    """Stage 3: train sttr-small on the dataset, unless a finished student is there to reuse."""
    from .train import latest_checkpoint, train

    _say("3/4 train: distil the teacher into sttr-small")
    run_dir = out / "run"
    student_dir = run_dir / "student"
    if (student_dir / "config.json").is_file() and not retrain:
        _say(f"reusing the trained student in {student_dir} (pass --retrain to train again)")
        return student_dir
    resume = latest_checkpoint(run_dir) is not None and not retrain
    config = _train_config(plan, dataset_dir, run_dir, device, seed, progress, resume)
    return Path(train(config))


def _train_config(
    plan: DemoPlan,
    dataset_dir: Path,
    run_dir: Path,
    device: str | None,
    seed: int,
    progress: bool,
    resume: bool,
) -> Any:
    """The demo's training settings: the plan's budget and loss, MobileNetV2 features."""
    from .train import TrainConfig

    return TrainConfig(
        data=str(dataset_dir),
        out=str(run_dir),
        preset="sttr-small",
        steps=plan.train_steps,
        max_minutes=plan.train_minutes,
        batch_size=plan.batch_size,
        lr=plan.lr,
        backbone_lr=plan.backbone_lr,
        warmup=min(30, plan.train_steps // 10),
        clip=1.0,
        size=plan.train_size,
        amp="none",
        ema=0.99,
        loss_network="mobilenet_v2",
        pixel_weight=plan.pixel_weight,
        perceptual_weight=plan.perceptual_weight,
        texture_weight=plan.texture_weight,
        texture_tiles=plan.texture_tiles,
        feature_weight=plan.feature_weight,
        stats_weight=plan.stats_weight,
        eval_every=plan.eval_every,
        save_every=plan.eval_every,
        val_fraction=0.2,
        num_workers=0,
        seed=seed,
        device=device,
        progress=progress,
        resume=resume,
    )


def _evaluate_stage(
    out: Path,
    plan: DemoPlan,
    folders: dict[str, Path],
    student_dir: Path,
    teacher: Any,
    *,
    device: str | None,
    progress: bool,
) -> tuple[Path, dict[str, Any]]:
    """Stage 4: teacher vs student on held-out contents and styles, then the distillation
    score; returns the report folder and the metrics."""
    from .evaluation import EvaluationSettings, evaluate

    _say("4/4 evaluate: teacher vs student on held-out contents and styles")
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
    metrics["distillation"] = distillation_score(
        report_dir / "images" / "teacher",
        report_dir / "images" / "student",
        folders,
        teacher,
        plan.size,
        picture=report_dir / "distillation.png",
    )
    (report_dir / "distillation.json").write_text(json.dumps(metrics["distillation"], indent=2))
    return report_dir, metrics


def _write_demo_json(path: Path, plan: DemoPlan, result: DemoResult) -> None:
    """What ran, with the plan and each stage's seconds (what a rerun reuses lives beside it)."""
    path.write_text(
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
