"""``styledistill samples``: write the offline sample photos and generated styles."""

from __future__ import annotations

import argparse

HELP = "write sample photos and generated style images (no network needed)"
DESCRIPTION = """\
Write the offline sample inputs as PNG files:

  OUT/contents/<name>.png  colour photos bundled with scikit-image (public domain / CC0),
                           long side resized to --size
  OUT/styles/<name>.png    procedurally painted styles, --size x --size, deterministic
                           for --seed

Styles: swirling_flow, pointillism, stained_glass, cubist_shards, ink_wash,
brush_strokes, mosaic_tiles, bold_strokes."""
EXAMPLES = """\
examples:
  styledistill samples --out samples/
  styledistill samples --out samples/ --size 256 --seed 7
  styledistill samples --out samples/ --styles swirling_flow,ink_wash --no-contents
  styledistill teach --teacher texture --contents samples/contents --styles samples/styles \\
      --out data/texture
"""


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of names")
    return names


def _selected(value: str | list[str]) -> list[str] | None:
    """None (= all) for the default "all", else the parsed list."""
    return None if value == "all" or value == ["all"] else list(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", required=True, default=argparse.SUPPRESS, help="output folder (created if missing)"
    )
    parser.add_argument(
        "--size", type=int, default=512, help="style side and photo long side, in pixels"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for the generated styles")
    parser.add_argument(
        "--styles",
        type=_names,
        default="all",
        metavar="NAMES",
        help="comma-separated style names",
    )
    parser.add_argument(
        "--contents",
        type=_names,
        default="all",
        metavar="NAMES",
        help="comma-separated photo names: astronaut, chelsea, coffee, rocket, "
        "hubble_deep_field, retina",
    )
    parser.add_argument("--no-contents", action="store_true", help="write only the styles")
    parser.add_argument("--no-styles", action="store_true", help="write only the photos")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace files already in --out (without it an existing file is refused, "
        "before anything is written)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..samples import write_samples

    if not 16 <= args.size <= 4096:
        raise ConfigError(f"--size {args.size}: use 16 to 4096 pixels")
    if args.seed < 0:
        raise ConfigError(f"--seed {args.seed}: use a non-negative integer")
    if args.no_contents and args.no_styles:
        raise ConfigError("--no-contents and --no-styles together leave nothing to write")
    from ..outputs import check_output_folder

    styles = [] if args.no_styles else _selected(args.styles)
    contents = [] if args.no_contents else _selected(args.contents)
    check_output_folder(args.out, "--out", need_bytes=16 * args.size * args.size * 3)
    written = write_samples(
        args.out,
        size=args.size,
        seed=args.seed,
        styles=styles,
        contents=contents,
        progress=not args.quiet,
        overwrite=args.overwrite,
    )
    for kind, paths in written.items():
        if paths:
            print(f"{kind}: {len(paths)} images in {paths[0].parent}")
    return 0
