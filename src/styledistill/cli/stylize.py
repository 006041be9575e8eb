"""``styledistill stylize``: run a trained student on an image or a folder of images."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from ..runtime import progress_bar, resolve_device
from ._common import (
    add_device_argument,
    add_max_pixels_argument,
    add_student_argument,
    student_source,
)

HELP = "stylize images, folders or video with a student (default: the pretrained one)"
DESCRIPTION = (
    "Stylize a content image, or every image in a folder, with one style image, using a "
    "student: a save_pretrained folder (config.json + model.safetensors), a training run "
    "folder holding student/, or the name of a pretrained student shipped with the package "
    "(the default, styleid-small). The style is encoded once. Contents keep their "
    "size and aspect ratio: the long side is resized to --size for the model, and the result "
    "is resized back. In a folder, unreadable files are reported and skipped (exit status 1 "
    "when any were skipped)."
)
EXAMPLES = """\
examples:
  styledistill stylize --content photo.jpg --style art.jpg      # the pretrained student
      # -> ./photo_stylized.png
  styledistill stylize --student styleid-small --content photo.jpg --style art.jpg
  styledistill stylize runs/small/student --content photo.jpg --style art.jpg
  styledistill stylize runs/small/student --content photo.jpg --style art.jpg --out out.png
  styledistill stylize runs/small/student --content photos/ --style art.jpg --out stylized/
  styledistill stylize runs/paper/student --content photos/ --style art.jpg \\
      --device cuda --half --size 1024
  styledistill stylize runs/small/student --video clip.mp4 --style art.jpg --out clip_art.mp4 \\
      --flicker-blend 0.6            # style encoded once, audio kept, less flicker
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_student_argument(parser)
    parser.add_argument(
        "--content",
        default=None,
        help="content image, or a folder of images (searched recursively); or use --video",
    )
    parser.add_argument("--style", required=True, help="style image")
    parser.add_argument(
        "--out",
        default=None,
        help="output file (single image) or folder (folder input, or an existing folder); "
        "default: ./STEM_stylized.png, or ./CONTENTDIR_stylized/ for a folder. A folder "
        "keeps the subfolders and writes NAME.png (sub/x.jpg -> OUT/sub/x.png); inputs "
        "sharing a name in one folder keep their suffix (x.jpg -> x.jpg.png, x.png -> x.png.png)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing output files (without it a single output that exists is "
        "refused, and a folder run writes only new names and lists the ones it kept)",
    )
    parser.add_argument(
        "--size",
        type=int,
        default=512,
        help="long side the model works at; 0 keeps the native resolution",
    )
    add_device_argument(parser)
    parser.add_argument(
        "--half", action="store_true", help="float16 on GPU (bfloat16 on CPU): faster, less memory"
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the model first")
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="allow pickle weight files (.bin/.pt), loaded with weights_only=True",
    )
    add_max_pixels_argument(parser)
    add_video_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError

    args.checkpoint = student_source(args)
    if args.size < 0:
        raise ConfigError(f"--size {args.size} must be >= 0")
    if getattr(args, "video", None):
        check_video_outputs(args)
        return run_video(args, stylizer=load_stylizer(args))
    if args.content is None:
        raise ConfigError("--content (an image or folder) or --video is required")
    given = [flag for flag, dest, default in VIDEO_ONLY if getattr(args, dest) != default]
    if given:
        raise ConfigError(
            f"{', '.join(given)}: used with --video only (it would be ignored for --content)"
        )
    content = Path(args.content)
    if not content.exists():
        raise ConfigError(f"--content {content}: no such file or folder")
    if content.is_dir():
        files = _folder_files(content)
        plan = _plan_folder(files, content, args)  # before the model loads
        stylizer = load_stylizer(args)
        return stylize_folder(stylizer, stylizer.encode_style(args.style), content, args, plan)
    target = _check_image_output(content, args)
    stylizer = load_stylizer(args)
    code = stylizer.encode_style(args.style)
    return stylize_image(stylizer, code, content, args, target)


#: (flag, dest, default) of the options only --video reads: refused for --content.
VIDEO_ONLY = (
    ("--flicker-blend", "flicker_blend", 0.0),
    ("--flicker-threshold", "flicker_threshold", 0.06),
    ("--crf", "crf", 18),
    ("--batch-size", "batch_size", 8),
)


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``styledistill stylize --video`` (the rest: --style, --out, --size...)."""
    group = parser.add_argument_group("video")
    group.add_argument(
        "--video",
        metavar="IN.mp4",
        default=None,
        help="stylize this video (with --style S.jpg --out OUT.mp4); fps and audio are kept",
    )
    group.add_argument(
        "--flicker-blend",
        metavar="ALPHA",
        type=float,
        default=VIDEO_ONLY[0][2],
        help="temporal blending in [0, 1) of each output frame with the previous one where the "
        "input is still (0 = off; 0.5-0.8 reduces flicker without smearing motion)",
    )
    group.add_argument(
        "--flicker-threshold",
        type=float,
        default=VIDEO_ONLY[1][2],
        help="input change (0-1, averaged over 16 px blocks) above which no blending happens",
    )
    group.add_argument(
        "--crf", type=int, default=VIDEO_ONLY[2][2], help="H.264 quality (lower = better, larger)"
    )
    if "--batch-size" not in parser._option_string_actions:
        group.add_argument(
            "--batch-size", type=int, default=VIDEO_ONLY[3][2], help="video frames per model call"
        )


def run_video(args: argparse.Namespace, stylizer=None) -> int:
    """Run ``stylize --video``: stylize the clip with one style, print the report.

    ``stylizer``: an already configured Stylizer (device, precision, size); loaded
    from ``args.checkpoint`` when None.
    """
    from ..errors import ConfigError

    style = getattr(args, "style", None)
    out = getattr(args, "out", None)
    if isinstance(style, (list, tuple)):
        if len(style) != 1:
            raise ConfigError("--video takes exactly one --style image")
        style = style[0]
    if not style:
        raise ConfigError("--video needs --style S.jpg")
    if not out:
        out = str(Path(args.video).with_name(Path(args.video).stem + "_stylized.mp4"))
    if stylizer is None:
        from ..student import Stylizer

        size = getattr(args, "size", 512)
        stylizer = Stylizer.from_pretrained(
            args.checkpoint,
            device=resolve_device(getattr(args, "device", None)),
            size=size,
            max_pixels=getattr(args, "max_pixels", None),
        )
    from ..video import stylize_video

    report = stylize_video(
        stylizer,
        args.video,
        style,
        out,
        batch_size=int(getattr(args, "batch_size", None) or 8),
        flicker=float(args.flicker_blend),
        flicker_threshold=float(args.flicker_threshold),
        crf=int(args.crf),
        progress=True,
    )
    print(report.summary())
    if math.isnan(report.flicker_raw):
        print("note: the input video does not change between frames; flicker is undefined")
    return 0


def _estimated_png_bytes(paths: list[Path]) -> int:
    """Raw RGB size of each readable input (header only): a stylized PNG is at most about that."""
    from PIL import Image

    total = 0
    for path in paths:
        try:
            with Image.open(path) as image:
                width, height = image.size
        except Exception:  # unreadable: reported (and skipped) when it is stylized
            continue
        total += width * height * 3
    return total


def check_video_outputs(args: argparse.Namespace) -> None:
    """``--video``: one line before any work if --content is also given or the output is unsafe."""
    from ..errors import ConfigError
    from ..outputs import check_not_an_input, check_output_file

    if args.content is not None:
        raise ConfigError(
            "--content is not used with --video (it would be ignored); stylize the video and "
            "the images in separate runs"
        )
    from ..video import check_video_paths

    video = Path(args.video)
    if not args.out:
        args.out = str(video.with_name(video.stem + "_stylized.mp4"))
    inputs = {"--video": video, "--style": Path(args.style)}
    check_not_an_input([args.out], inputs)
    check_video_paths(video, args.out)  # a file in, a known container out
    check_output_file(args.out, "--out", overwrite=args.overwrite)


def load_stylizer(args: argparse.Namespace) -> Any:
    """The Stylizer the flags ask for (device, precision, compile, size)."""
    import torch

    from ..student import Stylizer

    device = resolve_device(args.device)
    dtype = None
    if args.half:
        dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return Stylizer.from_pretrained(
        args.checkpoint,
        device=device,
        dtype=dtype,
        size=args.size,
        compile=args.compile,
        allow_pickle=args.allow_pickle,
        max_pixels=args.max_pixels,
    )


def _output_file(content: Path, out: str | None) -> Path:
    default_name = f"{content.stem}_stylized.png"
    if out is None:
        return Path.cwd() / default_name
    path = Path(out)
    if path.is_dir() or out.endswith(("/", "\\")):
        return path / default_name
    return path


def _check_image_output(content: Path, args: argparse.Namespace) -> Path:
    """The output file of a single image, checked before the model loads."""
    from ..images import ImageError, image_format
    from ..outputs import OutputError, check_not_an_input, check_output_file

    target = _output_file(content, args.out)
    check_not_an_input([target], {"--content": content, "--style": Path(args.style)})
    try:
        image_format(target)  # the suffix, before the model loads
    except ImageError as exc:
        raise OutputError(f"--out {exc}") from None
    return check_output_file(
        target,
        "--out",
        need_bytes=_estimated_png_bytes([content]),
        overwrite=args.overwrite,
    )


def stylize_image(
    stylizer: Any, code: Any, content: Path, args: argparse.Namespace, target: Path | None = None
) -> int:
    """One content file -> one output file."""
    from ..images import save_image

    target = target or _check_image_output(content, args)
    result = stylizer(content, code)
    save_image(result, target)
    print(f"wrote {target}")
    return 0


def folder_targets(files: list[Path], folder: Path, out_dir: Path) -> dict[Path, Path]:
    """Output PNG for each input: same relative path, suffix .png, never two alike.

    ``sub/x.jpg`` -> ``OUT/sub/x.png``. When inputs in one folder share a stem
    (``x.jpg`` and ``x.png``), each keeps its full name: ``x.jpg.png``, ``x.png.png``.
    Names are compared case-insensitively (so the result is safe on any file system);
    a name still taken gets ``_2``, ``_3``... before ``.png``.
    """
    by_stem: dict[Path, list[Path]] = {}
    for path in files:
        relative = path.relative_to(folder)
        by_stem.setdefault(Path(str(relative.with_suffix("")).lower()), []).append(relative)
    targets: dict[Path, Path] = {}
    taken: set[str] = set()
    for path in files:
        relative = path.relative_to(folder)
        shared = len(by_stem[Path(str(relative.with_suffix("")).lower())]) > 1
        stem = relative.name if shared else relative.stem
        name, n = f"{stem}.png", 1
        while str(relative.parent / name).lower() in taken:
            n += 1
            name = f"{stem}_{n}.png"
        taken.add(str(relative.parent / name).lower())
        targets[path] = out_dir / relative.parent / name
    return targets


def _folder_files(folder: Path) -> list[Path]:
    from ..errors import ConfigError
    from ..images import list_images

    files = list_images(folder)
    if not files:
        raise ConfigError(f"--content {folder}: no images found (looked for common image suffixes)")
    return files


class _FolderPlan:
    """Where each input goes, and which existing outputs are kept (not overwritten)."""

    def __init__(self, out_dir: Path, targets: dict[Path, Path], kept: list[Path]) -> None:
        self.out_dir = out_dir
        self.targets = targets
        self.kept = kept


def _plan_folder(files: list[Path], folder: Path, args: argparse.Namespace) -> _FolderPlan:
    """Output folder and targets, checked before the model loads."""
    from ..outputs import OutputError, check_not_an_input, check_output_folder, inputs_among

    out_dir = Path(args.out) if args.out else Path.cwd() / f"{folder.resolve().name}_stylized"
    style = Path(args.style)
    check_not_an_input(
        [out_dir], {"--content": folder, "--style": style}, "--out", folder_output=True
    )
    targets = folder_targets(files, folder, out_dir)
    clashes = inputs_among(targets, [*files, style])
    if clashes:
        raise OutputError(
            f"--out {out_dir}: output {clashes[0]} is an input file; choose another --out"
        )
    kept = [] if args.overwrite else [path for path in files if targets[path].exists()]
    new = [path for path in files if path not in set(kept)]
    check_output_folder(out_dir, "--out", need_bytes=_estimated_png_bytes(new))
    return _FolderPlan(out_dir, targets, kept)


def _names(paths: list[Path], root: Path, most: int = 5) -> str:
    shown = [str(path.relative_to(root)) for path in paths[:most]]
    more = f" and {len(paths) - most} more" if len(paths) > most else ""
    return ", ".join(shown) + more


def stylize_folder(
    stylizer: Any,
    code: Any,
    folder: Path,
    args: argparse.Namespace,
    plan: _FolderPlan | None = None,
) -> int:
    """Every image under ``folder`` -> same relative path under the output folder, as PNG.

    Existing outputs are kept (and listed) unless ``args.overwrite``.
    """
    from ..images import ImageError, save_image

    if plan is None:
        plan = _plan_folder(_folder_files(folder), folder, args)
    kept = set(plan.kept)
    todo = [path for path in plan.targets if path not in kept]
    done, skipped = 0, []
    bar = progress_bar(todo, desc="stylize", unit="img", enabled=bool(todo))
    for path in bar:
        target = plan.targets[path]
        try:
            result = stylizer(path, code)
        except ImageError as exc:
            skipped.append(path)
            bar.write(f"skipped {exc}", file=sys.stderr)
            continue
        save_image(result, target)
        done += 1
    print(
        f"stylized {done} image(s) into {plan.out_dir}"
        + (f", skipped {len(skipped)} unreadable" if skipped else "")
    )
    if plan.kept:
        outputs = [plan.targets[path] for path in plan.kept]
        print(
            f"kept {len(outputs)} existing output(s), not overwritten (--overwrite replaces "
            f"them): {_names(outputs, plan.out_dir)}"
        )
    return 1 if skipped else 0
