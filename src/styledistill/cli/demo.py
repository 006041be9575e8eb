"""``styledistill demo``: the whole flow offline, ending in a report."""

from __future__ import annotations

import argparse

HELP = "run the offline end-to-end demo (teach -> train -> evaluate -> report.html)"
DESCRIPTION = """\
The whole idea on a fresh machine, with no downloads: sample photos (scikit-image) and
generated painting styles (or your own --contents and --styles folders) -> the weight-free
texture teacher writes a paired dataset -> the sttr-small student is trained on it ->
teacher and student are evaluated on photos and styles the student never saw ->
report.html (grids, fidelity, histogram loss, speed) and the distillation score: how much
of the distance from histogram matching to the teacher's own re-run the student closes.
Full run <= 10 min on 2 CPU cores; --quick ~2 min. A rerun reuses the dataset and student.
"""
EXAMPLES = """\
examples:
  styledistill demo                          # full demo into ./styledistill-demo
  styledistill demo --quick --out /tmp/demo  # smaller, ~2 minutes
  styledistill demo --retrain                # keep the dataset, train the student again
  styledistill demo --contents photos/ --styles paintings/ --minutes 20 --out my-demo
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ._common import add_device_argument

    parser.add_argument("--out", default="styledistill-demo", help="folder for every output")
    parser.add_argument(
        "--quick", action="store_true", help="smaller images, fewer pairs, shorter training"
    )
    parser.add_argument(
        "--contents", help="your photos (a fifth held out for evaluation); needs --styles"
    )
    parser.add_argument(
        "--styles", help="your style images (a fifth held out for evaluation); needs --contents"
    )
    parser.add_argument(
        "--minutes", type=float, help="training time budget (default: 6, --quick: 1)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for styles, pairing and training")
    parser.add_argument(
        "--retrain", action="store_true", help="train again even if a student exists"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_device_argument(parser)


def _fmt(value, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


#: What a demo folder holds; a non-empty --out with anything else is someone else's folder.
DEMO_ENTRIES = {"inputs", "dataset", "run", "report", "demo.json"}
#: Disk a full demo writes: dataset, step checkpoints (model, EMA, optimizer) and student.
DEMO_BYTES = 400 * 2**20


def check_demo_output(args: argparse.Namespace) -> None:
    """--out before any work: a demo folder (or new/empty), writable, with room."""
    from pathlib import Path

    from ..outputs import OutputError, check_not_an_input, check_output_folder

    out = Path(args.out)
    inputs = {  # user folders, when the demo is given some
        f"--{name}": getattr(args, name)
        for name in ("contents", "styles")
        if isinstance(getattr(args, name, None), (str, Path))
    }
    check_not_an_input([out], inputs, "--out", folder_output=True)
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in DEMO_ENTRIES)
        if foreign and not (out / "demo.json").exists():
            raise OutputError(
                f"--out {out} already holds other files ({', '.join(foreign[:3])}"
                f"{', ...' if len(foreign) > 3 else ''}); the demo writes inputs/, dataset/, "
                "run/ and report/ there: choose a new or empty folder"
            )
    check_output_folder(out, "--out", need_bytes=DEMO_BYTES)


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    check_demo_output(args)

    result = run_demo(
        args.out,
        quick=args.quick,
        device=args.device,
        seed=args.seed,
        progress=not args.quiet,
        retrain=args.retrain,
        contents=args.contents,
        styles=args.styles,
        minutes=args.minutes,
    )
    metrics = result.metrics
    fidelity = metrics.get("fidelity") or {}
    timing = metrics.get("timing") or {}
    histogram = {k: (v or {}).get("histogram") for k, v in (metrics.get("metrics") or {}).items()}
    ratio = timing.get("teacher_over_student")
    print("styledistill demo finished")
    print(f"  dataset   {result.dataset}  ({result.pairs} pairs)")
    print(f"  student   {result.student}")
    print(
        f"  fidelity  student vs teacher on held-out pairs: PSNR {_fmt(fidelity.get('psnr'), '.2f')} dB, "
        f"SSIM {_fmt(fidelity.get('ssim'))}"
    )
    print(
        f"  histogram loss to the style: teacher {_fmt(histogram.get('teacher'))}, "
        f"student {_fmt(histogram.get('student'))}"
    )
    distill = metrics.get("distillation") or {}
    closed = (distill.get("closed") or {}).get("student")
    if closed:
        print(
            f"  distilled the student closes {closed['feature']:.0%} (features) and "
            f"{closed['style']:.0%} (style statistics) of the gap from histogram matching "
            f"to the teacher's re-run, EfficientNet-Lite0, {distill['pairs']} held-out pairs"
        )
    if ratio:
        print(f"  speed     student is {ratio:,.0f}x faster than the teacher per pair")
    stages = ", ".join(f"{k} {v:.0f}s" for k, v in result.seconds.items())
    print(f"  time      {stages}")
    print(f"  report    {result.report}")
    return 0
