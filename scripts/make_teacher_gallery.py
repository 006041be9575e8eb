"""Render docs/teacher_gallery.jpg: the offline teachers beside real StyleID, pair by pair.

Rows are real (content, style) pairs from a StyleID folder (``contents/XX.png``,
``styles/YY.png``, ``stylized/XX_stylized_YY.png``); columns are content | style |
texture teacher (the old stand-in) | gatys teacher (the new one) | StyleID (real), so
the picture shows how close each weight-free stand-in comes to the teacher it replaces.

examples:
  python scripts/make_teacher_gallery.py
  python scripts/make_teacher_gallery.py --pairs 00_03,01_07 --out /tmp/gallery.jpg
"""

from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PAIRS = "00_00,01_05,02_10,03_15,00_07,02_13"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("examples:")[0],
        epilog="examples:" + __doc__.split("examples:")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data", type=Path, default=REPO.parent / "shared" / "data" / "styleid_real"
    )
    parser.add_argument("--pairs", default=DEFAULT_PAIRS, help="CONTENT_STYLE ids, comma-separated")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "teacher_gallery.jpg")
    args = parser.parse_args()

    from styledistill.images import image_grid, load_image
    from styledistill.runtime import progress_bar
    from styledistill.teachers import create_teacher

    pairs = [tuple(item.strip().split("_")) for item in args.pairs.split(",") if item.strip()]
    teachers = {name: create_teacher(name, size=args.size) for name in ("texture", "gatys")}
    rows, labels = [], []
    bar = progress_bar(total=len(pairs), desc="gallery", unit="pair")
    for content_id, style_id in pairs:
        content = load_image(args.data / "contents" / f"{content_id}.png")
        style = load_image(args.data / "styles" / f"{style_id}.png")
        styleid = load_image(args.data / "stylized" / f"{content_id}_stylized_{style_id}.png")
        outputs = [teacher.stylize([content], [style])[0] for teacher in teachers.values()]
        rows.append([content, style, *outputs, styleid])
        labels.append(f"{content_id} x {style_id}")
        bar.update()
    bar.close()
    grid = image_grid(
        rows,
        column_labels=["content", "style", "texture teacher", "gatys teacher", "StyleID (real)"],
        row_labels=labels,
        cell_size=args.size,
        title=f"Offline teachers vs real StyleID, {args.size}px ({args.data.name})",
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.out, quality=88)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
