"""``styledistill evaluate``: the StyleID protocol for teacher and student, one report."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..teachers.registry import DEFAULT_STYLEID_MODEL, check_teacher_model, list_teachers
from ._common import add_device_argument, add_key_value_argument, add_max_pixels_argument

HELP = (
    "score teacher and/or student with the StyleID protocol (ArtFID, FID, LPIPS, CFSD, histogram)"
)
DESCRIPTION = """\
Stylize every content x style pair with the teacher and/or the student, then compute
the StyleID paper's metrics (ArtFID, FID, LPIPS, CFSD, histogram loss), teacher
fidelity (student vs teacher: PSNR, SSIM, LPIPS) and seconds per pair of each method.
Writes OUT/metrics.json, OUT/pairs.jsonl (per pair), OUT/images/<method>/*.png,
OUT/grid.png and a self-contained OUT/report.html (open it in any browser, offline).
For teacher fidelity use contents and styles the student was not trained on.

Metrics that need pretrained networks read them from --weights-dir (file names below)
or --weights NAME=FILE; missing ones are skipped and the report says why. The
histogram loss, PSNR and SSIM need no weights and always run.
  art_inception.pth        ArtFID's art-Inception (FID)   huggingface.co/matthias-wright/art_inception
  alexnet-owt-7be5be79.pth torchvision AlexNet (LPIPS)    download.pytorch.org/models/
  alex.pth                 LPIPS v0.1 heads (LPIPS)       github.com/richzhang/PerceptualSimilarity
  vgg19-dcbb9e9d.pth       torchvision VGG19 (CFSD)       download.pytorch.org/models/
Files already in torch hub's cache (~/.cache/torch/hub/checkpoints) are found too;
--download-weights fetches the missing ones there."""

EXAMPLES = """\
examples:
  # the paper's protocol (20 contents x 40 styles = 800 pairs), teacher vs student
  styledistill evaluate --teacher styleid --checkpoint runs/paper/student \\
      --contents data/cnt --styles data/sty --weights-dir weights/ --out reports/paper

  # offline, weight-free metrics only, texture teacher vs a small student on CPU
  styledistill evaluate --teacher texture --checkpoint runs/small/student \\
      --contents samples/contents --styles samples/styles --size 256 --out reports/small

  # student only, first 5 contents x 8 styles, fetch the metric networks once
  styledistill evaluate --checkpoint runs/small/student --contents cnt/ --styles sty/ \\
      --limit-contents 5 --limit-styles 8 --download-weights --out reports/quick

  # FID-infinity too, explicit weight files
  styledistill evaluate --checkpoint runs/paper/student --contents cnt/ --styles sty/ \\
      --weights art_inception=/models/art_inception.pth --fid-infinity --out reports/inf"""


def _weight_option(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=FILE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_argument_group("what to evaluate (at least one)")
    what.add_argument(
        "--checkpoint", help="student folder (from train / save_pretrained) or a pretrained name"
    )
    what.add_argument("--teacher", choices=list_teachers(), help="teacher to run on the same pairs")
    what.add_argument(
        "--model",
        help=f"Stable Diffusion hub id or folder for --teacher styleid "
        f"(default: {DEFAULT_STYLEID_MODEL})",
    )
    add_key_value_argument(
        what, "--teacher-option", "teacher setting (value parsed as JSON), repeatable"
    )
    data = parser.add_argument_group("data and output")
    data.add_argument("--contents", type=Path, required=True, help="folder of content images")
    data.add_argument("--styles", type=Path, required=True, help="folder of style images")
    data.add_argument("--out", type=Path, required=True, help="report folder to write")
    data.add_argument(
        "--size", type=int, default=512, help="stylization size (centre crop + resize)"
    )
    data.add_argument(
        "--metric-size",
        type=int,
        default=None,
        help="short side FID/LPIPS inputs are resized to (ArtFID: 512; default: --size)",
    )
    data.add_argument("--limit-contents", type=int, help="use only the first N content images")
    data.add_argument("--limit-styles", type=int, help="use only the first N style images")
    data.add_argument("--batch-size", type=int, default=8, help="images per stylization call")
    data.add_argument("--grid-rows", type=int, default=8, help="example rows in the report's grid")
    data.add_argument("--title", help="report title")
    metrics = parser.add_argument_group("metric weights")
    metrics.add_argument(
        "--weights-dir", type=Path, help="folder with the metric networks' weight files"
    )
    metrics.add_argument(
        "--weights",
        type=_weight_option,
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="explicit file for art_inception, alexnet, lpips_alex or vgg19; repeatable",
    )
    metrics.add_argument(
        "--download-weights",
        action="store_true",
        help="download missing metric weights into torch hub's cache",
    )
    metrics.add_argument(
        "--fid-infinity", action="store_true", help="also report FID∞ (Chong & Forsyth)"
    )
    data.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a report already in --out (without it such a folder is refused)",
    )
    add_device_argument(parser)
    add_max_pixels_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def check_outputs(args: argparse.Namespace, settings=None) -> None:
    """--checkpoint, the memory and --out before any image is read or model built."""
    from ..errors import CheckpointError
    from ..evaluation import check_evaluation_memory
    from ..hub import list_pretrained
    from ..images import list_images
    from ..outputs import OutputError, check_not_an_input, check_output_folder
    from ..plumbing import path_problem

    named = args.checkpoint is not None and str(args.checkpoint) in list_pretrained()
    problem = (
        args.checkpoint is not None
        and not (named and not Path(args.checkpoint).exists())
        and path_problem(args.checkpoint, "folder", "student folder")
    )
    if problem:
        raise CheckpointError(f"--checkpoint {args.checkpoint}: {problem}")
    if settings is not None:
        check_evaluation_memory(settings)
    inputs = {"--contents": args.contents, "--styles": args.styles}
    check_not_an_input([args.out], inputs, "--out", folder_output=True)
    if not args.overwrite:
        for name in ("metrics.json", "report.html"):
            if (Path(args.out) / name).exists():
                raise OutputError(
                    f"--out {args.out} already holds a report ({name}); pass --overwrite to "
                    "replace it, or choose another folder"
                )
    counts = []
    for folder, limit in ((args.contents, args.limit_contents), (args.styles, args.limit_styles)):
        found = len(list_images(folder)) if Path(folder).is_dir() else 0
        counts.append(min(found, limit) if limit else found)
    methods = (args.checkpoint is not None) + (args.teacher is not None)
    check_output_folder(
        args.out, "--out", need_bytes=counts[0] * counts[1] * methods * args.size**2 * 3
    )


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..evaluation import EvaluationSettings, evaluate
    from ..report import format_value
    from ..runtime import resolve_device

    if args.checkpoint is None and args.teacher is None:
        raise ConfigError("give --checkpoint (student) and/or --teacher")
    check_teacher_model(args.teacher, args.model)
    settings = EvaluationSettings(
        contents=args.contents,
        styles=args.styles,
        out=args.out,
        checkpoint=args.checkpoint,
        teacher=args.teacher,
        teacher_model=args.model,
        teacher_options=dict(args.teacher_option),
        weights_dir=args.weights_dir,
        weight_paths=dict(args.weights),
        download_weights=args.download_weights,
        size=args.size,
        metric_size=args.metric_size or args.size,
        limit_contents=args.limit_contents,
        limit_styles=args.limit_styles,
        device=resolve_device(args.device),
        batch_size=args.batch_size,
        fid_infinity=args.fid_infinity,
        grid_rows=args.grid_rows,
        title=args.title,
        progress=not args.quiet,
        max_pixels=args.max_pixels,
    )
    check_outputs(args, settings)
    results = evaluate(settings)
    names = ("artfid", "fid", "lpips", "cfsd", "histogram")
    print(f"{'method':<22}" + "".join(f"{n:>11}" for n in names) + f"{'s/pair':>11}")
    for key, info in results["methods"].items():
        row = results["metrics"][key]
        seconds = results["timing"][key]["seconds_per_pair"]
        print(
            f"{info['label']:<22}"
            + "".join(f"{format_value(row.get(n)):>11}" for n in names)
            + f"{format_value(seconds, 4):>11}"
        )
    if results.get("fidelity"):
        fidelity = results["fidelity"]
        print(
            "student vs teacher: "
            + ", ".join(f"{k} {format_value(v)}" for k, v in fidelity.items())
        )
    ratio = results["timing"].get("teacher_over_student")
    if ratio:
        faster = (
            f"student is {ratio:,.1f}x faster than the teacher"
            if ratio >= 1
            else f"teacher is {1 / ratio:,.1f}x faster than the student"
        )
        print(f"{faster} (same run, {results['machine']['device_name']})")
    for name, reason in results["skipped"].items():
        print(f"skipped {name}: {reason}")
    print(f"report: {Path(args.out) / 'report.html'}")
    return 0
