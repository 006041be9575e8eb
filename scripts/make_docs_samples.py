"""Regenerate docs/styles.png and docs/contents.png (labelled grids of the sample inputs).

Run from the repository root: ``.venv/bin/python scripts/make_docs_samples.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from styledistill.images import image_grid
from styledistill.samples import CONTENT_NAMES, STYLE_NAMES, sample_contents, sample_styles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs", help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="style seed")
    parser.add_argument("--size", type=int, default=512, help="style size before thumbnailing")
    parser.add_argument("--cell", type=int, default=256, help="grid cell size in pixels")
    parser.add_argument("--columns", type=int, default=4, help="cells per row")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def grid(images: dict, title: str):
        names = list(images)
        rows = [names[i : i + args.columns] for i in range(0, len(names), args.columns)]
        return image_grid(
            [[images[n] for n in row] for row in rows],
            captions=[[n for n in row] for row in rows],
            cell_size=args.cell,
            title=title,
        )

    styles = sample_styles(args.size, seed=args.seed)
    grid(styles, f"styledistill generated styles (seed {args.seed})").save(out / "styles.png")
    contents = sample_contents(args.size)
    grid(contents, "sample photos bundled with scikit-image").save(out / "contents.png")
    print(
        f"wrote {out / 'styles.png'} ({len(STYLE_NAMES)} styles) and "
        f"{out / 'contents.png'} ({len(CONTENT_NAMES)} photos)"
    )


if __name__ == "__main__":
    main()
