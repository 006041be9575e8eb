"""``styledistill train``: distil a teacher dataset into the STTR student."""

from __future__ import annotations

import argparse
import dataclasses

from ..runtime import set_threads
from ..train.config import (
    AMP_MODES,
    LOSS_NETWORK_CHOICES,
    PRETRAINED_LRS,
    RANDOM_INIT_LRS,
    SCHEDULES,
    TrainConfig,
)
from ..train.config import field_default as _default
from ._common import add_device_argument, add_max_pixels_argument, add_threads_argument

HELP = "train the STTR student on a teacher dataset (CPU, GPU, or torchrun DDP)"
DESCRIPTION = """\
Train the STTR student to reproduce a teacher's outputs (a dataset made by
'styledistill teach'). Validation pairs are held out by content AND by style, so the
reported PSNR/SSIM to the teacher include styles the student never trained on.

The run folder gets log.jsonl, TensorBoard events, sample grids (content | style |
teacher | student), checkpoints/step_XXXXXXX (last --keep) and checkpoints/best, and
the final EMA student in RUN_DIR/student (use it with 'styledistill stylize').
Under torchrun the run is data-parallel (DDP; NCCL on GPUs, Gloo on CPUs)."""

EXAMPLES = """\
examples:
  styledistill train --data data/texture --out runs/small
  styledistill train --data data/texture --out runs/small --steps 2000 --batch-size 4 \\
      --max-minutes 15 --num-workers 1          # a bounded CPU run
  styledistill train --data data/texture --out runs/small --resume   # continue exactly
  styledistill train --data data/mine --out runs/tuned --init styleid-small \\
      --max-minutes 20                          # fine-tune the pretrained student
  styledistill train --data data/texture --out runs/tiny --model-option dropout=0 \\
      --model-option decoder_layers=1            # change preset settings
  styledistill train --data data/styleid --out runs/paper --preset sttr-paper \\
      --backbone-weights imagenet --vgg-weights imagenet --amp bf16
  torchrun --nproc_per_node 8 -m styledistill train --data data/styleid \\
      --out runs/paper --preset sttr-paper --batch-size 8 --vgg-weights vgg19.safetensors
"""


def _short(value: float) -> str:
    """``1e-4`` rather than ``0.0001`` in help text."""
    mantissa, exponent = f"{value:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``styledistill train``; their defaults are TrainConfig's (train/config.py)."""
    _data_and_run(parser)
    _model(parser)
    _optimization(parser)
    _loss(parser)
    _logging_and_checkpoints(parser)


def _data_and_run(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data and run")
    g.add_argument("--data", required=True, help="dataset folder made by 'styledistill teach'")
    g.add_argument(
        "--out", required=True, metavar="RUN_DIR", help="run folder (logs, checkpoints, student)"
    )
    g.add_argument(
        "--resume", action="store_true", help="continue from the latest checkpoint in RUN_DIR"
    )
    g.add_argument(
        "--size",
        type=int,
        default=_default("size"),
        help="training crop side in pixels (multiple of 32)",
    )
    g.add_argument(
        "--val-fraction",
        type=float,
        default=_default("val_fraction"),
        help="share of pairs held out (by content and style)",
    )
    g.add_argument(
        "--val-data",
        metavar="DIR",
        help="validate on this dataset's pairs; then every pair of --data trains",
    )
    g.add_argument(
        "--crop-scale",
        type=float,
        nargs=2,
        default=_default("crop_scale"),
        metavar=("MIN", "MAX"),
        help="random crop side as a share of the teacher image's, resized to --size "
        "(0.5 0.5 at --size 256 on a 512 px dataset: the teacher's own scale)",
    )
    g.add_argument(
        "--val-max-pairs",
        type=int,
        default=_default("val_max_pairs"),
        help="most held-out pairs scored per evaluation",
    )
    g.add_argument(
        "--num-workers",
        type=int,
        default=_default("num_workers"),
        help="data loader processes per rank",
    )
    g.add_argument(
        "--seed",
        type=int,
        default=_default("seed"),
        help="seed of init, data order and augmentation",
    )
    add_device_argument(g)
    add_threads_argument(g)
    add_max_pixels_argument(g)
    g.add_argument(
        "--max-minutes",
        type=float,
        default=_default("max_minutes"),
        help="stop (and save) after this wall time",
    )


def _model(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model")
    g.add_argument(
        "--preset", default=_default("preset"), help="student preset: sttr-small or sttr-paper"
    )
    g.add_argument(
        "--init",
        metavar="STUDENT",
        help="start from a saved student (its folder, or a pretrained name such as "
        "styleid-small) and fine-tune it; its config replaces --preset/--model-option",
    )
    g.add_argument(
        "--model-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a preset setting (value parsed as JSON), repeatable, e.g. dropout=0",
    )
    g.add_argument(
        "--backbone-weights",
        default=_default("backbone_weights"),
        metavar="PATH|imagenet|random",
        help="tokenizer backbone weights: torchvision's ImageNet file from torch's hub cache "
        "(default; sttr-small's MobileNetV2 file is placed offline by scripts/setup.sh), a "
        "local file, or 'random'",
    )


def _optimization(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("optimization")
    g.add_argument("--steps", type=int, default=_default("steps"), help="optimizer steps")
    g.add_argument(
        "--batch-size",
        type=int,
        default=_default("batch_size"),
        help="pairs per micro-batch per rank",
    )
    g.add_argument(
        "--grad-accum",
        type=int,
        default=_default("grad_accum"),
        help="micro-batches per optimizer step",
    )
    g.add_argument(
        "--lr",
        type=float,
        default=_default("lr"),
        help=f"AdamW learning rate (default: {_short(PRETRAINED_LRS[0])}, the paper's, with "
        f"--backbone-weights; {_short(RANDOM_INIT_LRS[0])} from random backbones)",
    )
    g.add_argument(
        "--backbone-lr",
        type=float,
        default=_default("backbone_lr"),
        help="learning rate of the tokenizer backbones (default: "
        f"{_short(PRETRAINED_LRS[1])} with --backbone-weights; {_short(RANDOM_INIT_LRS[1])} "
        "from random backbones)",
    )
    g.add_argument(
        "--weight-decay",
        type=float,
        default=_default("weight_decay"),
        help="AdamW weight decay (not on biases/norms)",
    )
    g.add_argument("--warmup", type=int, default=_default("warmup"), help="linear warmup steps")
    g.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default=_default("schedule"),
        help="decay after warmup",
    )
    g.add_argument(
        "--clip", type=float, default=_default("clip"), help="gradient-norm clip (0: off)"
    )
    g.add_argument(
        "--ema", type=float, default=_default("ema"), help="EMA decay of the weights (0: no EMA)"
    )
    g.add_argument(
        "--amp",
        choices=AMP_MODES,
        default=_default("amp"),
        help="mixed precision on GPUs (CPUs always run fp32)",
    )


def _loss(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("loss")
    g.add_argument(
        "--pixel-weight",
        type=float,
        default=_default("pixel_weight"),
        help="L1 to the teacher output",
    )
    g.add_argument(
        "--perceptual-weight",
        type=float,
        default=_default("perceptual_weight"),
        help="loss-network feature L1 to the teacher output",
    )
    g.add_argument(
        "--texture-weight",
        type=float,
        default=_default("texture_weight"),
        help="loss-network feature statistics (mean/std) vs the teacher output",
    )
    g.add_argument(
        "--texture-tiles",
        type=int,
        default=_default("texture_tiles"),
        metavar="N",
        help="take the texture statistics per tile of an N x N grid (1: whole image)",
    )
    g.add_argument(
        "--feature-weight",
        type=float,
        default=_default("feature_weight"),
        help="LPIPS-style distance of unit-normalised loss-network features to the teacher",
    )
    g.add_argument(
        "--stats-weight",
        type=float,
        default=_default("stats_weight"),
        help="distance of per-image loss-network feature mean/std to the teacher's",
    )
    g.add_argument(
        "--content-weight",
        type=float,
        default=_default("content_weight"),
        help="official STTR content loss (relu4_1 MSE)",
    )
    g.add_argument(
        "--style-weight",
        type=float,
        default=_default("style_weight"),
        help="official STTR style loss (mean/std MSE)",
    )
    g.add_argument(
        "--loss-network",
        choices=LOSS_NETWORK_CHOICES,
        default=_default("loss_network"),
        help="network of the feature terms (auto: VGG19 when its ImageNet file is in torch's "
        "hub cache, as the STTR paper; else MobileNetV2, which ships offline)",
    )
    g.add_argument(
        "--loss-network-weights",
        default=_default("loss_network_weights"),
        metavar="PATH|imagenet",
        help="its weights: torchvision's ImageNet file from torch's hub cache, or a local file; "
        "missing weights are an error",
    )
    g.add_argument(
        "--vgg-weights",
        default=None,
        metavar="PATH|imagenet",
        help="shorthand for --loss-network vgg19 --loss-network-weights PATH",
    )


def _logging_and_checkpoints(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("logging and checkpoints")
    g.add_argument(
        "--log-every", type=int, default=_default("log_every"), help="steps per log.jsonl line"
    )
    g.add_argument(
        "--eval-every", type=int, default=_default("eval_every"), help="steps between validations"
    )
    g.add_argument(
        "--save-every", type=int, default=_default("save_every"), help="steps between checkpoints"
    )
    g.add_argument(
        "--keep", type=int, default=_default("keep"), help="step checkpoints kept (plus best/)"
    )
    g.add_argument("--no-tensorboard", action="store_true", help="log to log.jsonl only")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_options(items: list[str]) -> dict[str, object]:
    """``["dropout=0", "decoder_layers=4"]`` -> ``{"dropout": 0, "decoder_layers": 4}``."""
    import json

    from ..errors import ConfigError

    options: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--model-option {item!r}: expected KEY=VALUE")
        try:
            options[key.strip()] = json.loads(value)
        except ValueError:
            options[key.strip()] = value  # a bare string such as clamp
    return options


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of the parsed flags: each flag named after a field sets that field."""
    fields = {spec.name for spec in dataclasses.fields(TrainConfig)}
    named = {key: value for key, value in vars(args).items() if key in fields}
    return TrainConfig(
        **{
            **named,
            "model_overrides": parse_options(args.model_option),
            "loss_network": "vgg19" if args.vgg_weights else args.loss_network,
            "loss_network_weights": args.vgg_weights or args.loss_network_weights,
            "progress": not args.no_progress,
            "tensorboard": not args.no_tensorboard,
        }
    )


def run(args: argparse.Namespace) -> int:
    from ..train import train

    set_threads(args.threads)
    config = config_from_args(args)
    check_before_training(config)
    student = train(config)
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        print(f"student saved to {student}")
        _report_early_stop(config)
    return 0


def check_before_training(config) -> None:
    """Every argument and --out checked before anything is created or loaded.

    (The trainer makes RUN_DIR first; a bad --data or --preset must not leave an
    empty run folder behind.)
    """
    import dataclasses

    from ..dataset.reader import read_manifest, split_keys
    from ..errors import ConfigError
    from ..outputs import check_not_an_input, check_output_folder
    from ..student.presets import list_presets, preset_config
    from ..student.sttr import STTRConfig
    from ..train.memory import check_training_memory
    from ..values import check_fields

    config.validate()
    if config.init is not None:
        from ..student import STTR

        if config.model_overrides:
            raise ConfigError(
                "--init takes the architecture from the saved student: --model-option does not apply"
            )
        STTR.read_config(config.init)  # a one-line CheckpointError if it is no student
    if config.preset not in list_presets():
        raise ConfigError(f"--preset {config.preset}: choose from {', '.join(list_presets())}")
    known = {field.name for field in dataclasses.fields(STTRConfig)}
    unknown = sorted(set(config.model_overrides) - known)
    if unknown:
        raise ConfigError(f"--model-option: unknown STTR setting(s) {', '.join(unknown)}")
    check_fields(STTRConfig, config.model_overrides, "--model-option")
    preset_config(config.preset, **config.model_overrides).validate("--model-option")
    check_weight_files(config)
    check_training_memory(config)
    records = read_manifest(config.data)  # one line if --data is not a dataset
    if not records:
        raise ConfigError(f"--data {config.data}: the dataset has no finished pairs")
    inputs = {"--data": config.data}
    if config.val_data is not None:
        if not read_manifest(config.val_data):
            raise ConfigError(f"--val-data {config.val_data}: the dataset has no finished pairs")
        inputs["--val-data"] = config.val_data
    else:
        train_keys, val_keys = split_keys(records, config.val_fraction, seed=config.seed)
        if not train_keys or not val_keys:
            raise ConfigError(
                f"--data {config.data}: {len(records)} pairs cannot be split into training "
                f"and validation with --val-fraction {config.val_fraction} (or give --val-data)"
            )
    check_not_an_input([config.out], inputs, "--out", folder_output=True)
    check_output_folder(config.out, "--out")


def check_weight_files(config) -> None:
    """Local --backbone-weights / --loss-network-weights files read now, not after --out is made."""
    from pathlib import Path

    from ..errors import CheckpointError
    from ..plumbing import path_problem
    from ..weights_io import read_state_dict

    for flag, value in (
        ("--backbone-weights", config.backbone_weights),
        ("--loss-network-weights", config.loss_network_weights),
    ):
        if value in (None, "imagenet"):
            continue
        problem = path_problem(value, "file")
        if problem:
            raise CheckpointError(f"{flag} {value}: {problem}")
        read_state_dict(Path(value), allow_pickle=True)  # a one-line CheckpointError


def _report_early_stop(config) -> None:
    """Say so when --max-minutes ended the run before --steps (read from log.jsonl)."""
    import json
    from pathlib import Path

    from ..train import LOG_FILE

    end = None
    try:
        with open(Path(config.out) / LOG_FILE, encoding="utf-8") as fh:
            for line in fh:
                if '"type": "end"' in line:
                    end = json.loads(line)
    except (OSError, ValueError):
        return
    if end and end.get("stopped_early"):
        print(
            f"stopped early: --max-minutes {config.max_minutes:g} reached at step "
            f"{end.get('step')} of {config.steps}; --resume with more time continues the run"
        )
