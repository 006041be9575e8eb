"""Render docs/texture_gallery.png: sample photos (rows) x generated styles (columns).

examples:
  python scripts/make_texture_gallery.py
  python scripts/make_texture_gallery.py --size 256 --out docs/texture_gallery.png
"""

from __future__ import annotations

import argparse


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
    args = parser.parse_args()

    from tqdm.auto import tqdm

    from styledistill.images import center_crop_resize, image_grid
    from styledistill.samples import generate_style, sample_contents
    from styledistill.teachers.texture import TextureTeacher

    teacher = TextureTeacher(size=args.size)
    contents = sample_contents(names=args.contents.split(","))
    styles = {name: generate_style(name, args.size, seed=0) for name in args.styles.split(",")}
    prepared = {name: teacher.prepare_style(image) for name, image in styles.items()}
    rows = [[None, *styles.values()]]
    bar = tqdm(total=len(contents) * len(styles), desc="gallery", unit="pair")
    for content in contents.values():
        row = [center_crop_resize(content, args.size)]
        for style in prepared.values():
            row.append(teacher.stylize([content], [style])[0])
            bar.update()
        rows.append(row)
    bar.close()
    grid = image_grid(
        rows,
        column_labels=["content", *styles],
        row_labels=["style", *contents],
        cell_size=args.size,
        title=f"TextureTeacher (Elad & Milanfar 2017), {args.size}px, default settings",
    )
    grid.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
