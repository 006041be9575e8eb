"""``styledistill bench``: student presets vs teacher speed and memory, in one run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..runtime import resolve_device, set_threads
from ..teachers.registry import DEFAULT_STYLEID_MODEL, check_teacher_model, list_teachers
from ._common import add_device_argument, add_key_value_argument, add_threads_argument

HELP = "measure latency, throughput and peak memory of student presets and a teacher, side by side"
DESCRIPTION = """\
Time student presets and a teacher on the same machine in the same run: per-image
latency at batch 1 (median and interquartile range over --repeats runs after --warmup
untimed ones; style encoding included), throughput at each --batch-sizes (one style,
a batch of contents), and peak memory (CUDA allocator peak on GPUs, peak RSS on CPUs).
Prints a table with the teacher/student ratio and the machine name; writes
OUT/bench.json and OUT/bench.png (latency vs resolution).

Student presets run with random weights: speed does not depend on their values
(pass --checkpoint to time a trained student as well). The texture teacher needs
no weights; --teacher styleid loads --model."""

EXAMPLES = """\
examples:
  # CPU: small preset vs texture teacher at 256 and 512 px
  styledistill bench --presets sttr-small --teacher texture --sizes 256,512 --out bench/cpu

  # GPU: both presets vs StyleID, fp16 student, batch 1 and 32
  styledistill bench --presets sttr-small,sttr-paper --teacher styleid \\
      --model runwayml/stable-diffusion-v1-5 --sizes 256,512,1024 --teacher-sizes 512 \\
      --batch-sizes 1,32 --device cuda --half --out bench/h100

  # student presets only
  styledistill bench --teacher none --sizes 512 --batch-sizes 1,8,64 --out bench/students"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--presets",
        default="sttr-small,sttr-paper",
        help="comma-separated student presets ('' for none)",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        help="also time a trained student folder; repeatable",
    )
    parser.add_argument(
        "--teacher",
        default="texture",
        choices=[*list_teachers(), "none"],
        help="teacher timed in the same run",
    )
    parser.add_argument(
        "--model",
        help=f"Stable Diffusion hub id or folder for --teacher styleid "
        f"(default: {DEFAULT_STYLEID_MODEL})",
    )
    add_key_value_argument(
        parser,
        "--preset-option",
        "override a student preset setting (JSON value), e.g. d_model=64; repeatable",
    )
    add_key_value_argument(
        parser, "--teacher-option", "teacher setting (JSON value), e.g. num_steps=25; repeatable"
    )
    parser.add_argument("--sizes", default="256,512,1024", help="square image sides to time")
    parser.add_argument("--teacher-sizes", help="sides for the teacher (default: --sizes)")
    parser.add_argument("--batch-sizes", default="1,8", help="student batch sizes (1 = latency)")
    parser.add_argument("--teacher-batch-sizes", default="1", help="teacher batch sizes")
    parser.add_argument(
        "--repeats", type=int, default=10, help="timed runs per student measurement"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs before timing")
    parser.add_argument(
        "--teacher-repeats", type=int, default=3, help="timed runs per teacher measurement"
    )
    parser.add_argument("--half", action="store_true", help="student in float16 (CUDA only)")
    add_threads_argument(parser)
    parser.add_argument("--out", type=Path, help="folder for bench.json and bench.png")
    parser.add_argument(
        "--json", action="store_true", help="print the JSON report instead of the table"
    )
    add_device_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..benchmark import BenchSettings, format_table, parse_int_list, run_benchmark, write_bench
    from ..errors import ConfigError

    set_threads(args.threads)
    check_teacher_model(None if args.teacher == "none" else args.teacher, args.model)
    if args.warmup < 0:
        raise ConfigError(f"--warmup {args.warmup}: must be >= 0")
    if args.out is not None:  # before the timing run, not after it
        from ..outputs import check_output_folder

        check_output_folder(args.out, "--out", need_bytes=1 << 20)
    settings = BenchSettings(
        presets=[p.strip() for p in args.presets.split(",") if p.strip()],
        checkpoints=list(args.checkpoint),
        preset_overrides=dict(args.preset_option),
        teacher_options=dict(args.teacher_option),
        teacher=None if args.teacher == "none" else args.teacher,
        teacher_model=args.model,
        sizes=parse_int_list(args.sizes, "--sizes"),
        teacher_sizes=parse_int_list(args.teacher_sizes, "--teacher-sizes")
        if args.teacher_sizes
        else None,
        batch_sizes=parse_int_list(args.batch_sizes, "--batch-sizes"),
        teacher_batch_sizes=parse_int_list(args.teacher_batch_sizes, "--teacher-batch-sizes"),
        device=resolve_device(args.device),
        half=args.half,
        repeats=args.repeats,
        warmup=args.warmup,
        teacher_repeats=args.teacher_repeats,
        progress=not args.quiet,
    )
    report = run_benchmark(settings)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(format_table(report))
    if args.out is not None:
        paths = write_bench(report, args.out)
        print(f"wrote {paths['json']} and {paths['plot']}")
    return 0
