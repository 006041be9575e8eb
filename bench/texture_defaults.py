"""Benchmark: choose TextureTeacher defaults by texture transfer, structure, edges, crispness.

Stylizes photo x style pairs at 256 px for a grid of candidate settings and prints, per
setting (means over the pairs, worst pair in brackets where it matters):

* **texture transfer** - how far the output's texture statistics move from the
  content's toward the style's: ``1 - d(output, style) / d(content, style)`` per
  statistic (0% = as far as the content, 100% = the style's), averaged over three on
  luminance: the gradient-orientation histogram (12 bins mod pi, magnitude-weighted,
  L1), the gradient-magnitude histogram (20 bins over [0, 0.2], L1) and the radial
  power spectrum (Hann window, normalised to sum 1, mean |log10| difference).
* **structure** - SSIM of the blurred luminance (sigma = size/64) of output and
  content: is the photo's layout still there? The style image itself scores the
  "nothing kept" reference printed in the header.
* **edges** - correlation of the output's and the content's edge maps (Sobel gradient
  magnitude of the luminance, blurred with sigma 1): are the photo's fine contours
  (eyes, mouth, thin masts) still there? The blurred SSIM does not see those.
* **crispness** - the output's mean gradient magnitude as a fraction of the style's.
* **s/pair** - wall seconds to prepare the style and stylize one pair (median).

Contents are scikit-image's bundled photos; styles the project's generated ones, or
every image in ``--styles DIR``.

examples:
  python bench/texture_defaults.py
  python bench/texture_defaults.py --styles ~/paintings --contents astronaut,coffee
  python bench/texture_defaults.py --only "old;current" --extra "fusion_detail_radius=3"
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from styledistill.benchmark import machine_line
from styledistill.teachers.texture import PREVIOUS_DEFAULTS as OLD_DEFAULTS

NO_DENOISE = {"denoise_radius": 0}
CANDIDATES: dict[str, dict[str, float]] = {
    "old defaults": OLD_DEFAULTS,
    "no denoise": {**OLD_DEFAULTS, **NO_DENOISE},
    "no denoise, weight 0.7": {**OLD_DEFAULTS, **NO_DENOISE, "content_weight": 0.7},
    "no denoise, weight 0.5": {**OLD_DEFAULTS, **NO_DENOISE, "content_weight": 0.5},
    "no denoise, weight 0.35": {**OLD_DEFAULTS, **NO_DENOISE, "content_weight": 0.35},
    "no denoise, detail 1": {**OLD_DEFAULTS, **NO_DENOISE, "fusion_detail_radius": 1},
    "no denoise, detail 2": {**OLD_DEFAULTS, **NO_DENOISE, "fusion_detail_radius": 2},
    "no denoise, detail 3": {**OLD_DEFAULTS, **NO_DENOISE, "fusion_detail_radius": 3},
    "no denoise, detail 2, weight 0.7": {
        **OLD_DEFAULTS,
        **NO_DENOISE,
        "fusion_detail_radius": 2,
        "content_weight": 0.7,
    },
    "no denoise, detail 2, weight 0.5": {
        **OLD_DEFAULTS,
        **NO_DENOISE,
        "fusion_detail_radius": 2,
        "content_weight": 0.5,
    },
    "no denoise, detail 2, noise 0.4": {
        **OLD_DEFAULTS,
        **NO_DENOISE,
        "fusion_detail_radius": 2,
        "noise_sigma": 0.4,
    },
    "no denoise, detail 2, 3 iterations": {
        **OLD_DEFAULTS,
        **NO_DENOISE,
        "fusion_detail_radius": 2,
        "iterations": 3,
    },
    "no denoise, detail 2, 4x style bank": {
        **OLD_DEFAULTS,
        **NO_DENOISE,
        "fusion_detail_radius": 2,
        "style_stride": 1,
        "max_style_patches": 24000,
    },
    "current defaults": {},
}
GENERATED_STYLES = "swirling_flow,stained_glass,pointillism,ink_wash,brush_strokes"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


# --------------------------------------------------------------------------- statistics


def luminance(image) -> np.ndarray:
    """Rec. 601 luma of a ``[3,H,W]`` tensor, as float64 numpy."""
    rgb = image.double().numpy()
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def gradients(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward-difference gradient magnitude and orientation (mod pi)."""
    gx = gray[:-1, 1:] - gray[:-1, :-1]
    gy = gray[1:, :-1] - gray[:-1, :-1]
    return np.hypot(gx, gy).ravel(), np.mod(np.arctan2(gy, gx), np.pi).ravel()


def orientation_histogram(gray: np.ndarray, bins: int = 12) -> np.ndarray:
    magnitude, angle = gradients(gray)
    hist = np.bincount(
        np.minimum((angle / np.pi * bins).astype(int), bins - 1), magnitude, minlength=bins
    )
    return hist / max(hist.sum(), 1e-12)


def magnitude_histogram(gray: np.ndarray, bins: int = 20, top: float = 0.2) -> np.ndarray:
    magnitude, _ = gradients(gray)
    hist = np.bincount(np.minimum((magnitude / top * bins).astype(int), bins - 1), minlength=bins)
    return hist / hist.sum()


def radial_log_spectrum(gray: np.ndarray) -> np.ndarray:
    """log10 of the radially averaged power spectrum, normalised to total power 1."""
    side = min(gray.shape)
    gray = gray[:side, :side] - gray[:side, :side].mean()
    window = np.outer(np.hanning(side), np.hanning(side))
    power = np.abs(np.fft.fftshift(np.fft.fft2(gray * window))) ** 2
    ys, xs = np.indices(power.shape) - side // 2
    radius = np.hypot(ys, xs).astype(int).ravel()
    keep = (radius >= 1) & (radius < side // 2)
    sums = np.bincount(radius[keep], power.ravel()[keep], minlength=side // 2)[1:]
    counts = np.bincount(radius[keep], minlength=side // 2)[1:]
    spectrum = sums / np.maximum(counts, 1)
    return np.log10(spectrum / spectrum.sum() + 1e-12)


TEXTURE_STATISTICS = {
    "orient": (orientation_histogram, lambda a, b: np.abs(a - b).sum()),
    "magn": (magnitude_histogram, lambda a, b: np.abs(a - b).sum()),
    "spectrum": (radial_log_spectrum, lambda a, b: np.abs(a - b).mean()),
}


def texture_transfer(output: np.ndarray, content: np.ndarray, style: np.ndarray) -> dict:
    """Per statistic: 1 - d(output, style) / d(content, style) (0 = content, 1 = style)."""
    moved = {}
    for name, (statistic, distance) in TEXTURE_STATISTICS.items():
        target = statistic(style)
        start = distance(statistic(content), target)
        moved[name] = 1.0 - distance(statistic(output), target) / max(start, 1e-12)
    return moved


def blurred_ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.filters import gaussian
    from skimage.metrics import structural_similarity

    sigma = a.shape[-1] / 64
    return float(structural_similarity(gaussian(a, sigma), gaussian(b, sigma), data_range=1.0))


def edge_correlation(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.filters import gaussian, sobel

    edges_a, edges_b = gaussian(sobel(a), 1.0), gaussian(sobel(b), 1.0)
    return float(np.corrcoef(edges_a.ravel(), edges_b.ravel())[0, 1])


def crispness(output: np.ndarray, style: np.ndarray) -> float:
    return float(gradients(output)[0].mean() / max(gradients(style)[0].mean(), 1e-12))


# --------------------------------------------------------------------------- the run


def parse_settings(text: str) -> dict[str, float]:
    """``"denoise_radius=0,content_weight=0.5"`` -> a settings dict (ints stay ints)."""
    settings = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, value = item.split("=", 1)
        number = float(value)
        settings[key.strip()] = int(number) if number.is_integer() and "." not in value else number
    return settings


def load_styles(directory: str | None, size: int) -> dict:
    from styledistill.images import center_crop_resize, load_image
    from styledistill.samples import generate_style

    if directory is None:
        names = GENERATED_STYLES.split(",")
        return {name: generate_style(name, size, seed=0) for name in names}
    paths = sorted(
        p for p in Path(directory).expanduser().iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not paths:
        sys.exit(f"no images in {directory}")
    return {path.stem: center_crop_resize(load_image(path), size) for path in paths}


def evaluate(settings: dict, contents: dict, styles: dict, size: int) -> dict:
    from styledistill.teachers.texture import TextureTeacher

    teacher = TextureTeacher(size=size, **settings)
    rows = []
    for content in contents.values():
        for style in styles.values():
            start = time.perf_counter()
            output = teacher.stylize([content], [teacher.prepare_style(style)], seeds=[0])[0]
            seconds = time.perf_counter() - start
            out_gray, content_gray, style_gray = map(luminance, (output, content, style))
            row = texture_transfer(out_gray, content_gray, style_gray)
            row["structure"] = blurred_ssim(out_gray, content_gray)
            row["edges"] = edge_correlation(out_gray, content_gray)
            row["crisp"] = crispness(out_gray, style_gray)
            row["seconds"] = seconds
            rows.append(row)
    summary = {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}
    summary["texture"] = float(np.mean([summary[k] for k in TEXTURE_STATISTICS]))
    summary["structure_min"] = min(r["structure"] for r in rows)
    summary["edges_min"] = min(r["edges"] for r in rows)
    summary["seconds"] = statistics.median(r["seconds"] for r in rows)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("examples:")[0],
        epilog="examples:" + __doc__.split("examples:")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--styles", default=None, help="folder of style images (default: generated)"
    )
    parser.add_argument("--contents", default="astronaut,chelsea,coffee,rocket")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument(
        "--only", default=None, help="';'-separated candidate names (or their beginnings) to run"
    )
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        help='another candidate over the current defaults, e.g. "content_weight=0.6"',
    )
    args = parser.parse_args()

    import torch

    from styledistill.images import center_crop_resize
    from styledistill.samples import sample_contents

    torch.set_num_threads(args.threads)
    candidates = dict(CANDIDATES)
    if args.only:
        wanted = [w.strip() for w in args.only.split(";")]
        candidates = {k: v for k, v in candidates.items() if any(k.startswith(w) for w in wanted)}
    for text in args.extra:
        candidates[text] = parse_settings(text)
    contents = {
        name: center_crop_resize(image, args.size)
        for name, image in sample_contents(names=args.contents.split(",")).items()
    }
    styles = load_styles(args.styles, args.size)

    print("command: python " + " ".join(shlex.quote(a) for a in sys.argv))
    print(f"machine: {machine_line()}")
    pairs = [(luminance(c), luminance(s)) for c in contents.values() for s in styles.values()]
    style_structure = np.mean([blurred_ssim(s, c) for c, s in pairs])
    style_edges = np.mean([edge_correlation(s, c) for c, s in pairs])
    print(
        f"pairs: {len(contents)} contents ({', '.join(contents)}) x {len(styles)} styles "
        f"({', '.join(styles)}), {args.size}px, seed 0; the style image itself vs the "
        f"content scores structure {style_structure:.2f}, edges {style_edges:.2f}"
    )
    print()
    print(
        "| setting | texture transfer | orient / magn / spectrum | structure (min) "
        "| edges (min) | crispness | s/pair |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, settings in candidates.items():
        result = evaluate(settings, contents, styles, args.size)
        print(
            f"| {label} | **{result['texture']:.0%}** | {result['orient']:.0%} / "
            f"{result['magn']:.0%} / {result['spectrum']:.0%} | {result['structure']:.2f} "
            f"({result['structure_min']:.2f}) | {result['edges']:.2f} "
            f"({result['edges_min']:.2f}) | {result['crisp']:.0%} | "
            f"{result['seconds']:.2f} |",
            flush=True,
        )
    print(f"\nload after: {tuple(round(x, 2) for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
