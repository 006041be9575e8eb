"""Peak memory per working pixel of each entry point: the constants of styledistill.budget.

Each row runs in a fresh process: one call at a small side, one at a larger side, and
the growth of the peak resident memory (VmHWM) between the two, divided by the growth
of the working pixels (batch x height x width), is the marginal bytes per pixel. The
constants in ``src/styledistill/budget.py`` follow from these figures (bench/RESULTS.md
says how). The ``onnx-paper`` row peaks at about 11 GB (onnxruntime's attention
matrices); at 1024 px it needs more than 24 GB, so the row stops at 768.

    .venv/bin/python bench/pixel_budget.py                 # every row, CPU, float32
    .venv/bin/python bench/pixel_budget.py --rows student-small,onnx-small --json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def peak_rss() -> int:
    """This process's peak resident memory in bytes (VmHWM)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _image(side: int):
    import numpy as np

    rng = np.random.default_rng(0)
    coarse = rng.random((3, max(1, side // 16), max(1, side // 16)), dtype=np.float32)
    return np.ascontiguousarray(np.kron(coarse, np.ones((16, 16), np.float32))[:, :side, :side])


def _student(preset: str):
    import torch

    from styledistill.student import STTR

    torch.manual_seed(0)
    return STTR.from_preset(preset).eval()


def run_row(row: str, sides: list[int], workdir: Path) -> list[tuple[int, int]]:
    """``(working pixels, peak bytes)`` after each side, in this process."""
    import torch

    torch.set_num_threads(2)
    found = []
    if row.startswith("student-"):
        from styledistill.student import Stylizer

        # the style at the content's side: what a model without a style_size meets
        stylizer = Stylizer(_student("sttr-" + row.split("-", 1)[1]), device="cpu", size=None)
        for side in sides:
            image = torch.from_numpy(_image(side))
            stylizer(image, image, output="tensor")
            found.append((side * side, peak_rss()))
    elif row.startswith("onnx-"):
        from styledistill.export import export_onnx
        from styledistill.onnx_runtime import OnnxStylizer

        path = workdir / "model.onnx"
        export_onnx(_student("sttr-" + row.split("-", 1)[1]), path, size=64, verify=False)
        runner = OnnxStylizer(path, size=0)
        style = _image(256)
        for side in sides:
            runner(_image(side), style, output="numpy")
            found.append((side * side, peak_rss()))
    elif row.startswith("export-"):
        from styledistill.export import export_onnx

        model = _student("sttr-" + row.split("-", 1)[1])
        for side in sides:
            export_onnx(model, workdir / f"m{side}.onnx", size=side)
            found.append((side * side, peak_rss()))
    elif row == "texture":
        from styledistill.teachers import create_teacher

        for side in sides:
            teacher = create_teacher("texture", size=side)
            image = torch.from_numpy(_image(side))
            teacher.stylize(image[None], [image])
            found.append((side * side, peak_rss()))
    elif row.startswith("train-"):
        from styledistill.losses import DistillationLoss, LossWeights

        _, preset, network = row.split("-")
        model = _student("sttr-" + preset).train()
        loss_fn = DistillationLoss(
            LossWeights(), network=network, network_weights=None, allow_random_weights=True
        )
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        batch = 2
        for side in sides:
            content = torch.from_numpy(_image(side))[None].repeat(batch, 1, 1, 1)
            out = model(content, content)
            loss_fn(out, content, content, content)[0].backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            found.append((batch * side * side, peak_rss()))
    else:
        raise SystemExit(f"unknown row {row}")
    return found


ROWS = {
    "student-small": [256, 512, 1024],
    "student-paper": [256, 512, 1024],
    "onnx-small": [512, 1024, 1536],
    "onnx-paper": [256, 512, 640, 768],
    "export-small": [128, 256],
    "texture": [128, 256],
    "train-small-vgg19": [128, 256],
    "train-paper-vgg19": [128, 256],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(run_row(args.child, ROWS[args.child], Path(tmp))))
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    results = {}
    for row in args.rows.split(","):
        out = subprocess.run(
            [sys.executable, __file__, "--child", row],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        if out.returncode:
            results[row] = {"error": out.stderr.strip().splitlines()[-1:]}
            continue
        points = json.loads(out.stdout.strip().splitlines()[-1])
        slopes = [
            (b2 - b1) / (p2 - p1) for (p1, b1), (p2, b2) in itertools.pairwise(points) if p2 > p1
        ]
        results[row] = {"points": points, "bytes_per_pixel": [round(s) for s in slopes]}
        if not args.json:
            print(f"{row:<14} " + "  ".join(f"{s:7.0f} B/px" for s in slopes), flush=True)
    if args.json:
        from styledistill.benchmark import cpu_name

        print(json.dumps({"machine": cpu_name(), **results}))


if __name__ == "__main__":
    main()
