"""Regenerate docs/video_frames.png: frames of a clip before and after ``stylize --video``.

Writes a short clip (a slow pan across scikit-image's astronaut photo, H.264 via PyAV),
stylizes it with the shipped student (``--student``, default styleid-small) through
``styledistill.video.stylize_video`` with temporal blending, as ``styledistill stylize
--video ... --flicker-blend 0.6`` does, and grids a few input frames above the same
frames of the output.

    .venv/bin/python scripts/make_video_frames.py
    .venv/bin/python scripts/make_video_frames.py --style my_painting.jpg
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_pan_clip(path: Path, frames: int = 24, side: int = 256, fps: int = 12) -> None:
    """A pan across the astronaut photo: every frame a ``side`` px window, moving right."""
    import av

    from styledistill.images import load_image, resize_long_side
    from styledistill.samples import skimage_data_dir

    photo = resize_long_side(load_image(skimage_data_dir() / "astronaut.png"), 2 * side)
    pixels = (photo.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    top, step = (pixels.shape[0] - side) // 2, (pixels.shape[1] - side) // (frames - 1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = side, side, "yuv420p"
        for index in range(frames):
            window = pixels[top : top + side, index * step : index * step + side]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(window), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def read_frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--student", default="styleid-small", help="pretrained name or folder")
    parser.add_argument("--style", type=Path, help="style image (default: sample swirling_flow)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "video_frames.png")
    args = parser.parse_args()

    from PIL import Image

    from styledistill.images import image_grid, save_image
    from styledistill.samples import generate_style
    from styledistill.student import Stylizer
    from styledistill.video import stylize_video

    with tempfile.TemporaryDirectory(prefix="video-frames-") as work:
        work = Path(work)
        clip, styled = work / "clip.mp4", work / "clip_art.mp4"
        style = args.style or save_image(generate_style("swirling_flow", 256, 0), work / "s.png")
        write_pan_clip(clip)
        stylizer = Stylizer.from_pretrained(args.student, device="cpu", size=256)
        stylize_video(stylizer, clip, style, styled, flicker=0.6, progress=False)
        before, after = read_frames(clip), read_frames(styled)
        picks = np.linspace(0, len(before) - 1, 4).round().astype(int)
        rows = [
            [Image.fromarray(before[i]) for i in picks],
            [Image.fromarray(after[i]) for i in picks],
        ]
        grid = image_grid(
            rows,
            column_labels=[f"frame {i}" for i in picks],
            row_labels=["input", args.student],
            cell_size=192,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.out)
    print(f"wrote {args.out} ({len(before)} frames, {args.student})")


if __name__ == "__main__":
    main()
