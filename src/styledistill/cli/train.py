"""``styledistill train``: distil a teacher dataset into the STTR student."""

from __future__ import annotations

import argparse

from ._common import add_device_argument, add_threads_argument, apply_threads

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
  styledistill train --data data/texture --out runs/tiny --model-option dropout=0 \\
      --model-option decoder_layers=1            # change preset settings
  styledistill train --data data/styleid --out runs/paper --preset sttr-paper \\
      --backbone-weights imagenet --vgg-weights imagenet --amp bf16
  torchrun --nproc_per_node 8 -m styledistill train --data data/styleid \\
      --out runs/paper --preset sttr-paper --batch-size 8 --vgg-weights vgg19.safetensors
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data and run")
    g.add_argument("--data", required=True, help="dataset folder made by 'styledistill teach'")
    g.add_argument(
        "--out", required=True, metavar="RUN_DIR", help="run folder (logs, checkpoints, student)"
    )
    g.add_argument(
        "--resume", action="store_true", help="continue from the latest checkpoint in RUN_DIR"
    )
    g.add_argument(
        "--size", type=int, default=256, help="training crop side in pixels (multiple of 32)"
    )
    g.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of pairs held out (by content and style)",
    )
    g.add_argument(
        "--val-max-pairs", type=int, default=64, help="most held-out pairs scored per evaluation"
    )
    g.add_argument("--num-workers", type=int, default=2, help="data loader processes per rank")
    g.add_argument("--seed", type=int, default=0, help="seed of init, data order and augmentation")
    add_device_argument(g)
    add_threads_argument(g)
    g.add_argument(
        "--max-minutes", type=float, default=None, help="stop (and save) after this wall time"
    )

    g = parser.add_argument_group("model")
    g.add_argument(
        "--preset", default="sttr-small", help="student preset: sttr-small or sttr-paper"
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
        default="imagenet",
        metavar="PATH|imagenet|random",
        help="tokenizer backbone weights: torchvision's ImageNet file from torch's hub cache "
        "(default; sttr-small's MobileNetV2 file is placed offline by scripts/setup.sh), a "
        "local file, or 'random'",
    )

    g = parser.add_argument_group("optimization")
    g.add_argument("--steps", type=int, default=20_000, help="optimizer steps")
    g.add_argument("--batch-size", type=int, default=8, help="pairs per micro-batch per rank")
    g.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    g.add_argument(
        "--lr",
        type=float,
        default=None,
        help="AdamW learning rate (default: 1e-4, the paper's, with --backbone-weights; "
        "1e-3 from random backbones)",
    )
    g.add_argument(
        "--backbone-lr",
        type=float,
        default=None,
        help="learning rate of the tokenizer backbones (default: 1e-5 with "
        "--backbone-weights; 1.5e-4 from random backbones)",
    )
    g.add_argument(
        "--weight-decay", type=float, default=1e-4, help="AdamW weight decay (not on biases/norms)"
    )
    g.add_argument("--warmup", type=int, default=500, help="linear warmup steps")
    g.add_argument(
        "--schedule",
        choices=("cosine", "step", "constant"),
        default="cosine",
        help="decay after warmup",
    )
    g.add_argument("--clip", type=float, default=0.1, help="gradient-norm clip (0: off)")
    g.add_argument("--ema", type=float, default=0.999, help="EMA decay of the weights (0: no EMA)")
    g.add_argument(
        "--amp",
        choices=("bf16", "fp16", "none"),
        default="bf16",
        help="mixed precision on GPUs (CPUs always run fp32)",
    )

    g = parser.add_argument_group("loss")
    g.add_argument("--pixel-weight", type=float, default=0.25, help="L1 to the teacher output")
    g.add_argument(
        "--perceptual-weight",
        type=float,
        default=0.2,
        help="loss-network feature L1 to the teacher output",
    )
    g.add_argument(
        "--texture-weight",
        type=float,
        default=2.0,
        help="loss-network feature statistics (mean/std) vs the teacher output",
    )
    g.add_argument(
        "--content-weight", type=float, default=0.0, help="official STTR content loss (relu4_1 MSE)"
    )
    g.add_argument(
        "--style-weight", type=float, default=0.0, help="official STTR style loss (mean/std MSE)"
    )
    g.add_argument(
        "--loss-network",
        choices=("auto", "vgg19", "mobilenet_v2"),
        default="auto",
        help="network of the feature terms (auto: VGG19 when its ImageNet file is in torch's "
        "hub cache, as the STTR paper; else MobileNetV2, which ships offline)",
    )
    g.add_argument(
        "--loss-network-weights",
        default="imagenet",
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

    g = parser.add_argument_group("logging and checkpoints")
    g.add_argument("--log-every", type=int, default=10, help="steps per log.jsonl line")
    g.add_argument("--eval-every", type=int, default=500, help="steps between validations")
    g.add_argument("--save-every", type=int, default=1000, help="steps between checkpoints")
    g.add_argument("--keep", type=int, default=3, help="step checkpoints kept (plus best/)")
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


def run(args: argparse.Namespace) -> int:
    from ..train import TrainConfig, train

    apply_threads(args.threads)
    config = TrainConfig(
        model_overrides=parse_options(args.model_option),
        data=args.data,
        out=args.out,
        preset=args.preset,
        steps=args.steps,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        lr=args.lr,
        backbone_lr=args.backbone_lr,
        weight_decay=args.weight_decay,
        warmup=args.warmup,
        schedule=args.schedule,
        clip=args.clip,
        size=args.size,
        resume=args.resume,
        loss_network="vgg19" if args.vgg_weights else args.loss_network,
        loss_network_weights=args.vgg_weights or args.loss_network_weights,
        backbone_weights=args.backbone_weights,
        pixel_weight=args.pixel_weight,
        perceptual_weight=args.perceptual_weight,
        texture_weight=args.texture_weight,
        content_weight=args.content_weight,
        style_weight=args.style_weight,
        ema=args.ema,
        amp=args.amp,
        log_every=args.log_every,
        eval_every=args.eval_every,
        save_every=args.save_every,
        keep=args.keep,
        val_fraction=args.val_fraction,
        val_max_pairs=args.val_max_pairs,
        num_workers=args.num_workers,
        seed=args.seed,
        device=args.device,
        max_minutes=args.max_minutes,
        progress=not args.no_progress,
        tensorboard=not args.no_tensorboard,
    )
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
    from ..outputs import check_output_folder
    from ..student.sttr import STTRConfig, list_presets

    config.validate()
    if config.preset not in list_presets():
        raise ConfigError(f"--preset {config.preset}: choose from {', '.join(list_presets())}")
    known = {field.name for field in dataclasses.fields(STTRConfig)}
    unknown = sorted(set(config.model_overrides) - known)
    if unknown:
        raise ConfigError(f"--model-option: unknown STTR setting(s) {', '.join(unknown)}")
    records = read_manifest(config.data)  # one line if --data is not a dataset
    if not records:
        raise ConfigError(f"--data {config.data}: the dataset has no finished pairs")
    train_keys, val_keys = split_keys(records, config.val_fraction, seed=config.seed)
    if not train_keys or not val_keys:
        raise ConfigError(
            f"--data {config.data}: {len(records)} pairs cannot be split into training and "
            f"validation with --val-fraction {config.val_fraction}"
        )
    check_output_folder(config.out, "--out")


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
