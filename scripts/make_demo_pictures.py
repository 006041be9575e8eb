"""Regenerate the README's demo picture from a real demo run (the trained student).

Runs ``styledistill demo`` into ``--demo`` (or reuses a finished one there) and copies the
held-out grid it writes (content | hist-matched | student | teacher re-run | teacher) to
``docs/demo_report.png``.

    .venv/bin/python scripts/make_demo_pictures.py --demo /tmp/styledistill-demo
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--demo", type=Path, default=Path("/tmp/styledistill-demo"))
    args = parser.parse_args()
    grid = args.demo / "report" / "distillation.png"
    if not grid.is_file():
        command = [sys.executable, "-m", "styledistill", "demo", "--out", str(args.demo)]
        subprocess.run(command, check=True)
    target = ROOT / "docs" / "demo_report.png"
    shutil.copyfile(grid, target)
    print(f"wrote {target} from {grid}")


if __name__ == "__main__":
    main()
