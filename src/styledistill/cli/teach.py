"""``styledistill teach``: a teacher turns content and style folders into a paired dataset."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..runtime import resolve_device, set_threads
from ..teachers.registry import (
    DEFAULT_STYLEID_MODEL,
    check_teacher_memory,
    get_teacher_spec,
    list_teachers,
)
from ._common import (
    add_device_argument,
    add_key_value_argument,
    add_max_pixels_argument,
    add_threads_argument,
)

HELP = "make a paired dataset: a teacher stylizes content x style images (sharded, resumable)"
DESCRIPTION = """\
Run a teacher over every planned (content, style) pair and write a paired dataset:
OUT/dataset.json (the plan) and OUT/shard-IIIII-of-NNNNN/ with one PNG per pair (named
by pair key), manifest.jsonl (one line per finished pair) and failures.jsonl (inputs
that could not be read; they are skipped). Rerunning the same command resumes: finished
pairs are skipped, even after a kill -9. Under torchrun each rank writes its own shard;
a Slurm array uses --num-shards/--shard-index. No communication between processes."""

EXAMPLES = """\
examples:
  # the offline StyleID-like teacher (optimisation on ImageNet MobileNetV2), CPU
  styledistill teach --teacher gatys --contents photos/ --styles paintings/ \\
      --out data/gatys --size 256 --styles-per-content 4

  # weight-free texture teacher on CPU, 4 random styles per content
  styledistill teach --teacher texture --contents photos/ --styles paintings/ \\
      --out data/texture --size 256 --styles-per-content 4

  # StyleID on one GPU (paper settings), batches of 8 pairs
  styledistill teach --teacher styleid --model CompVis/stable-diffusion-v1-4 \\
      --contents coco/ --styles wikiart/ --out data/styleid --batch-size 8

  # 8 GPUs on one node: each rank writes shard-0000R-of-00008
  torchrun --nproc_per_node=8 -m styledistill teach --teacher styleid \\
      --contents coco/ --styles wikiart/ --out data/styleid --batch-size 8

  # Slurm array of 16 jobs (one GPU each): job i writes shard i of 16
  styledistill teach --teacher styleid --contents coco/ --styles wikiart/ \\
      --out data/styleid --num-shards 16 --shard-index $SLURM_ARRAY_TASK_ID

  # quick look: 100 pairs, then inspect
  styledistill teach --teacher texture --contents photos/ --styles paintings/ \\
      --out data/try --limit 100 && styledistill dataset info data/try"""

#: CLI flag destination -> StyleIDTeacher setting name (flags left unset keep its defaults).
STYLEID_SETTINGS = {
    "gamma": "gamma",
    "tau": "tau",
    "steps": "num_steps",
    "layers": "layers",
    "style_cache": "style_cache_dir",
}
#: CLI flag destination -> TextureTeacher setting name.
TEXTURE_SETTINGS = {
    "scales": "scales",
    "patch_sizes": "patch_sizes",
    "gaps": "gaps",
    "iterations": "iterations",
    "content_weight": "content_weight",
    "noise_sigma": "noise_sigma",
    "style_rotations": "style_rotations",
}
#: Each teacher's settings flags (the rest of a teacher's settings: --teacher-option).
#: (gatys: its few settings go through --teacher-option, e.g. steps=60.)
TEACHER_FLAGS = {"styleid": STYLEID_SETTINGS, "texture": TEXTURE_SETTINGS, "gatys": {}}
#: Flags of teachers that load weights (switches and loading options).
WEIGHTS_FLAGS = ("no_adain", "no_inject", "clean_schedule", "model", "revision", "dtype")


def _csv(kind):
    def parse(text: str) -> list:
        try:
            return [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {kind.__name__}s, got {text!r}"
            ) from None

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    io = parser.add_argument_group("inputs and output")
    io.add_argument("--teacher", choices=list_teachers(), required=True, help="which teacher")
    io.add_argument(
        "--contents",
        required=True,
        metavar="DIR",
        help="folder of content images (searched recursively)",
    )
    io.add_argument(
        "--styles",
        required=True,
        metavar="DIR",
        help="folder of style images (searched recursively)",
    )
    io.add_argument(
        "--out", required=True, metavar="DIR", help="dataset folder (created; reused to resume)"
    )
    io.add_argument(
        "--copy-inputs",
        action="store_true",
        help="also store the preprocessed content/style in the dataset, so it works after the input folders move",
    )
    io.add_argument(
        "--overwrite",
        action="store_true",
        help="delete a dataset in --out made with different settings and start over (single process only)",
    )
    io.add_argument(
        "--min-side",
        type=int,
        default=16,
        metavar="PX",
        help="inputs with a smaller side are reported in failures.jsonl and skipped",
    )

    plan = parser.add_argument_group("pair plan")
    pairs = plan.add_mutually_exclusive_group()
    pairs.add_argument(
        "--pairs", choices=("all",), default="all", help="all: every content with every style"
    )
    pairs.add_argument(
        "--styles-per-content",
        type=int,
        metavar="K",
        help="K random styles per content instead of all",
    )
    plan.add_argument(
        "--limit", type=int, metavar="N", help="keep a seeded random subset of N pairs"
    )
    plan.add_argument(
        "--seed", type=int, default=0, help="seed of the plan and of every pair's teacher seed"
    )

    run = parser.add_argument_group("running")
    run.add_argument(
        "--size",
        type=int,
        help="teacher resolution (default: "
        + ", ".join(f"{get_teacher_spec(n).default_size} for {n}" for n in list_teachers())
        + ")",
    )
    run.add_argument(
        "--batch-size",
        type=int,
        default=1,
        metavar="B",
        help="pairs per teacher call (StyleID: ~8-16 on a big GPU)",
    )
    add_device_argument(run)
    add_threads_argument(run)
    add_max_pixels_argument(run)
    run.add_argument(
        "--dtype",
        choices=("fp16", "bf16", "fp32"),
        help="StyleID weights/compute dtype (default: fp16 on CUDA, fp32 on CPU)",
    )
    run.add_argument(
        "--num-shards",
        type=int,
        metavar="N",
        help="split the plan into N shards (Slurm array); with torchrun: N x WORLD_SIZE shards",
    )
    run.add_argument(
        "--shard-index", type=int, metavar="I", help="which shard this process writes (0..N-1)"
    )
    run.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (the summary line is still printed)",
    )

    sid = parser.add_argument_group("StyleID teacher (--teacher styleid)")
    sid.add_argument(
        "--model",
        default=None,
        metavar="ID_OR_PATH",
        help="Stable Diffusion 1.x/2.x hub id, diffusers folder or local .ckpt/.safetensors file "
        f"(with --teacher-option config=DIFFUSERS_FOLDER; default: {DEFAULT_STYLEID_MODEL})",
    )
    sid.add_argument(
        "--revision", default=None, help="hub revision (branch, tag or commit) of --model"
    )
    sid.add_argument("--gamma", type=float, help="query preservation (paper: 0.75)")
    sid.add_argument("--tau", type=float, help="attention temperature (paper: 1.5)")
    sid.add_argument("--steps", type=int, help="DDIM steps (paper: 50)")
    sid.add_argument(
        "--layers",
        type=_csv(str),
        metavar="L1,L2",
        help="self-attention layers to inject into (default: up_blocks.2-3, six layers)",
    )
    sid.add_argument(
        "--no-adain",
        action="store_true",
        help="start sampling from the inverted content latent, without AdaIN",
    )
    sid.add_argument("--no-inject", action="store_true", help="no feature injection (ablation)")
    sid.add_argument(
        "--clean-schedule",
        action="store_true",
        help="sample all steps from t=981 instead of the official code's 49-step quirk",
    )
    sid.add_argument(
        "--style-cache",
        metavar="DIR",
        help="keep inverted style features here (safetensors, ~1.2 GB per style at 512) "
        "so reruns and other shards skip the inversion",
    )

    tex = parser.add_argument_group("texture teacher (--teacher texture)")
    tex.add_argument(
        "--scales",
        type=_csv(float),
        metavar="S1,S2",
        help="pyramid scales, coarse to fine (default: 0.25,0.5,1)",
    )
    tex.add_argument(
        "--patch-sizes",
        type=_csv(int),
        metavar="P1,P2",
        help="patch sizes, largest first (default: 33,21,13,9)",
    )
    tex.add_argument(
        "--gaps",
        type=_csv(int),
        metavar="G1,G2",
        help="sub-sampling gap per patch size (default: 28,18,8,5)",
    )
    tex.add_argument("--iterations", type=int, help="rounds per patch size")
    tex.add_argument(
        "--content-weight",
        type=float,
        help="pull toward the content (higher keeps more of the photo)",
    )
    tex.add_argument("--noise-sigma", type=float, help="start noise std")
    tex.add_argument("--style-rotations", type=int, help="1-4: also use rotated style patches")
    add_key_value_argument(
        parser, "--teacher-option", "any other teacher setting (value parsed as JSON), repeatable"
    )


def _settings(args: argparse.Namespace, table: dict[str, str]) -> dict[str, Any]:
    settings = {
        name: getattr(args, dest) for dest, name in table.items() if getattr(args, dest) is not None
    }
    settings.update(dict(args.teacher_option))
    if args.size is not None:
        settings["size"] = args.size
    if args.max_pixels is not None:
        settings["max_pixels"] = args.max_pixels
    return settings


def _check_flags(args: argparse.Namespace) -> None:
    """Refuse flags of another teacher instead of silently ignoring them."""
    from ..errors import ConfigError

    flags = [
        dest
        for name, table in TEACHER_FLAGS.items()
        if name != args.teacher
        for dest in table
        if getattr(args, dest) is not None
    ]
    if not get_teacher_spec(args.teacher).needs_weights:
        flags += [d for d in WEIGHTS_FLAGS if getattr(args, d) not in (None, False)]
    if flags:
        names = ", ".join("--" + f.replace("_", "-") for f in flags)
        raise ConfigError(f"{names}: not a setting of --teacher {args.teacher}")


def _weights_settings(args: argparse.Namespace, device: Any) -> dict[str, Any]:
    """StyleID's switches, dtype and revision, as ``from_pretrained`` arguments."""
    import torch

    settings: dict[str, Any] = {"progress": False, "batch_size": args.batch_size}  # one bar
    if args.no_adain:
        settings["adain_init"] = False
    if args.no_inject:
        settings["inject"] = False
    if args.clean_schedule:
        settings["official_schedule"] = False
    dtype_name = args.dtype or ("fp16" if device.type == "cuda" else "fp32")
    settings["dtype"] = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[
        dtype_name
    ]
    settings["revision"] = args.revision
    return settings


def build_teacher(args: argparse.Namespace, device: Any) -> Any:
    """The teacher the flags ask for (StyleID weights load here).

    The texture teacher fits its finest patch sizes to ``--size`` itself.
    """
    from ..teachers import create_teacher

    settings = _settings(args, TEACHER_FLAGS[args.teacher])
    if get_teacher_spec(args.teacher).needs_weights:
        settings = {**_weights_settings(args, device), **settings}
    return create_teacher(args.teacher, model=args.model, device=device, **settings)


def check_outputs(args: argparse.Namespace, planned: int, num_shards: int) -> None:
    """--out (and --style-cache) before any weights load: not among the inputs, writable, room."""
    from pathlib import Path

    from ..outputs import check_not_an_input, check_output_folder

    inputs = {"--contents": args.contents, "--styles": args.styles}
    check_not_an_input([args.out], inputs, "--out", folder_output=True)
    done = 0
    for manifest in Path(args.out).glob("shard-*/manifest.jsonl"):
        with open(manifest, "rb") as fh:
            done += sum(1 for _ in fh)
    left = max(0, planned - done) // num_shards + 1
    size = args.size or get_teacher_spec(args.teacher).default_size
    check_output_folder(args.out, "--out", need_bytes=left * size * size * 3)
    if getattr(args, "style_cache", None):
        check_output_folder(args.style_cache, "--style-cache")


def run(args: argparse.Namespace) -> int:
    from ..dataset.plan import make_plan
    from ..dataset.writer import shard_from_env, teach

    _check_flags(args)
    set_threads(args.threads)
    num_shards, shard_index = shard_from_env(args.num_shards, args.shard_index)
    local_rank = os.environ.get("LOCAL_RANK")
    device_name = args.device
    if device_name is None and local_rank is not None:
        import torch

        if torch.cuda.is_available():
            device_name = f"cuda:{int(local_rank) % torch.cuda.device_count()}"
    device = resolve_device(device_name)
    if device.type == "cuda":
        import torch

        torch.cuda.set_device(device)
    size = args.size or get_teacher_spec(args.teacher).default_size
    check_teacher_memory(  # before weights load or --out is made
        args.teacher, size, args.batch_size, max_pixels=args.max_pixels, device=device
    )
    # Check the folders and the plan before loading gigabytes of weights.
    plan = make_plan(
        args.contents,
        args.styles,
        styles_per_content=args.styles_per_content,
        limit=args.limit,
        seed=args.seed,
    )
    check_outputs(args, len(plan), num_shards)
    teacher = build_teacher(args, device)
    show_progress = not args.no_progress and (local_rank is None or local_rank == "0")
    summary = teach(
        teacher,
        args.contents,
        args.styles,
        args.out,
        styles_per_content=args.styles_per_content,
        limit=args.limit,
        seed=args.seed,
        batch_size=args.batch_size,
        num_shards=num_shards,
        shard_index=shard_index,
        copy_inputs=args.copy_inputs,
        min_side=args.min_side,
        overwrite=args.overwrite,
        show_progress=show_progress,
        plan=plan,
    )
    print(summary.line(), file=sys.stderr)
    if summary.pairs_in_shard and not summary.written + summary.already_done:
        print(
            "styledistill teach: error: no pair could be made (every planned pair has an "
            f"unreadable input; see {summary.out / summary.shard / 'failures.jsonl'})",
            file=sys.stderr,
        )
        return 1
    return 0
