"""Render docs/texture_gallery.png: sample photos (rows) x generated styles (columns).

examples:
  python scripts/make_texture_gallery.py
  python scripts/make_texture_gallery.py --size 256 --out docs/texture_gallery.png
  python scripts/make_texture_gallery.py --previous-defaults --out docs/texture_gallery_before.png
  python scripts/make_texture_gallery.py --settings "content_weight=0.5,noise_sigma=0.3"
"""

from __future__ import annotations

import argparse


def parse_settings(text: str) -> dict[str, int | float]:
    """``"denoise_radius=1,content_weight=0.5"`` -> ``{"denoise_radius": 1, ...}``."""
    settings: dict[str, int | float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = item.partition("=")
        settings[key.strip()] = float(value) if "." in value else int(value)
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("examples:")[0],
        epilog="examples:" + __doc__.split("examples:")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", default="docs/texture_gallery.png")
    parser.add_argument("--contents", default="astronaut,chelsea,coffee,rocket")
    parser.add_argument(
        "--styles", default="swirling_flow,stained_glass,pointillism,mosaic_tiles,ink_wash"
    )
    parser.add_argument(
        "--settings",
        default="",
        help='TextureTeacher settings over the defaults, e.g. "denoise_radius=1"',
    )
    parser.add_argument(
        "--previous-defaults",
        action="store_true",
        help="the settings before bench/texture_defaults.py chose today's (a 'before' picture)",
    )
    args = parser.parse_args()

    from styledistill.images import center_crop_resize, image_grid
    from styledistill.runtime import progress_bar
    from styledistill.samples import generate_style, sample_contents
    from styledistill.teachers.texture import PREVIOUS_DEFAULTS, TextureTeacher

    settings = dict(PREVIOUS_DEFAULTS) if args.previous_defaults else {}
    settings.update(parse_settings(args.settings))
    teacher = TextureTeacher(size=args.size, **settings)
    contents = sample_contents(names=args.contents.split(","))
    styles = {name: generate_style(name, args.size, seed=0) for name in args.styles.split(",")}
    prepared = {name: teacher.prepare_style(image) for name, image in styles.items()}
    rows = [[None, *styles.values()]]
    bar = progress_bar(total=len(contents) * len(styles), desc="gallery", unit="pair")
    for content in contents.values():
        row = [center_crop_resize(content, args.size)]
        for style in prepared.values():
            row.append(teacher.stylize([content], [style])[0])
            bar.update()
        rows.append(row)
    bar.close()
    described = (
        ", ".join(f"{key}={value}" for key, value in settings.items())
        if settings
        else "default settings"
    )
    if args.previous_defaults:
        described = f"previous defaults ({described})"
    grid = image_grid(
        rows,
        column_labels=["content", *styles],
        row_labels=["style", *contents],
        cell_size=args.size,
        title=f"TextureTeacher (Elad & Milanfar 2017), {args.size}px, {described}",
    )
    grid.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
