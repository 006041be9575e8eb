"""Offline sample images: public-domain photos and procedurally painted style images.

A fresh machine with no network must still be able to teach, train and demo, so the
project ships its own inputs. Content photos are the colour photographs bundled inside
scikit-image's wheel (public domain / CC0; nothing is downloaded). Style images are
painted here by small vectorized generators, one per painterly style, each with its own
palette and brush texture, deterministic for a seed and valid at any size. They feed
the patch-based texture teacher, so each one has rich local texture and a distinct
colour histogram.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ConfigError
from .images import ImageError, load_image, resize_long_side, save_image
from .runtime import progress_bar

__all__ = [
    "CONTENT_FILES",
    "CONTENT_NAMES",
    "STYLE_DESCRIPTIONS",
    "STYLE_NAMES",
    "content_path",
    "generate_style",
    "sample_contents",
    "sample_styles",
    "sample_targets",
    "skimage_data_dir",
    "write_samples",
]

# --------------------------------------------------------------------------- contents

#: Colour photos bundled in scikit-image's wheel, with their licences (from skimage.data).
CONTENT_FILES: dict[str, tuple[str, str]] = {
    "astronaut": ("astronaut.png", "NASA, public domain"),
    "chelsea": ("chelsea.png", "Stefan van der Walt, CC0"),
    "coffee": ("coffee.png", "Rachel Michetti, CC0"),
    "rocket": ("rocket.jpg", "SpaceX, public domain"),
    "hubble_deep_field": ("hubble_deep_field.jpg", "NASA, public domain"),
    "retina": ("retina.jpg", "Mikael Haggstrom, CC0"),
}
#: Names accepted by :func:`sample_contents`, in display order.
CONTENT_NAMES: tuple[str, ...] = tuple(CONTENT_FILES)


def skimage_data_dir() -> Path:
    """scikit-image's bundled data folder (photos that ship with the wheel, no download)."""
    try:
        import skimage
    except ImportError as exc:  # pragma: no cover - scikit-image is a core dependency
        from .errors import MissingDependencyError

        raise MissingDependencyError("scikit-image", "samples", "sample photos") from exc
    return Path(skimage.__file__).parent / "data"


def content_path(name: str) -> Path:
    """Path of a bundled sample photo inside scikit-image's package data (no download)."""
    if name not in CONTENT_FILES:
        raise ConfigError(f"unknown sample photo {name!r}; choose from {', '.join(CONTENT_NAMES)}")
    path = skimage_data_dir() / CONTENT_FILES[name][0]
    if not path.is_file():
        raise ImageError(path, "sample photo missing from the scikit-image install")
    return path


def sample_contents(
    size: int | None = None, names: Sequence[str] | None = None
) -> dict[str, torch.Tensor]:
    """The bundled photos as float32 ``[3, H, W]`` tensors in [0, 1].

    ``size`` resizes the long side (keeping the aspect ratio); None keeps the original.
    """
    contents = {}
    for name in CONTENT_NAMES if names is None else names:
        image = load_image(content_path(name))
        if size is not None:
            image = resize_long_side(image, int(size))
        contents[name] = image
    return contents


# --------------------------------------------------------------------------- helpers

Size = int | tuple[int, int]


def _rgb(*colours: tuple[int, int, int]) -> np.ndarray:
    return np.asarray(colours, dtype=np.float32) / 255.0


def _rng(name: str, seed: int) -> np.random.Generator:
    # crc32 (not hash()) keeps streams identical across processes and Python versions
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode())])


def _grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    ys = torch.arange(height, dtype=torch.float32) + 0.5
    xs = torch.arange(width, dtype=torch.float32) + 0.5
    return torch.meshgrid(ys, xs, indexing="ij")


def _noise(
    rng: np.random.Generator,
    height: int,
    width: int,
    cell: float,
    octaves: int = 1,
    persistence: float = 0.5,
    aspect: float = 1.0,
) -> torch.Tensor:
    """Smooth value noise (bicubic-upsampled random grid), zero mean, unit std.

    ``cell`` is the feature size in pixels; ``aspect`` > 1 stretches features along x.
    """
    total = torch.zeros(height, width)
    amplitude = 1.0
    for octave in range(octaves):
        cy = max(cell / 2**octave, 1.0)
        cx = max(cy * aspect, 1.0)
        gh, gw = math.ceil(height / cy) + 4, math.ceil(width / cx) + 4
        grid = torch.from_numpy(rng.standard_normal((1, 1, gh, gw)).astype(np.float32))
        up = F.interpolate(
            grid, size=(round(gh * cy), round(gw * cx)), mode="bicubic", align_corners=False
        )[0, 0]
        oy, ox = round(1.5 * cy), round(1.5 * cx)
        total += amplitude * up[oy : oy + height, ox : ox + width]
        amplitude *= persistence
    # float64 statistics: the result must not depend on how many threads summed it
    mean, std = float(total.double().mean()), float(total.double().std())
    return (total - mean) / (std + 1e-6)


def _equalize(field: torch.Tensor) -> torch.Tensor:
    """Map values to their rank in [0, 1] so palettes are used evenly at any size."""
    flat = field.flatten()
    ranks = torch.empty_like(flat)
    ranks[flat.argsort()] = torch.linspace(0.0, 1.0, flat.numel())
    return ranks.view_as(field)


def _palette(t: torch.Tensor, colours: np.ndarray) -> torch.Tensor:
    """Piecewise-linear colour ramp: ``t`` in [0, 1] -> ``[3, H, W]``."""
    stops = torch.from_numpy(colours)
    x = t.clamp(0, 1) * (len(colours) - 1)
    low = x.floor().long().clamp(max=len(colours) - 2)
    frac = (x - low).unsqueeze(0)
    return stops[low].permute(2, 0, 1) * (1 - frac) + stops[low + 1].permute(2, 0, 1) * frac


def _sample_at(field: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Nearest-pixel lookup of ``field`` ([C,H,W] or [H,W]) at float coordinates."""
    height, width = field.shape[-2:]
    iy = ys.long().clamp(0, height - 1)
    ix = xs.long().clamp(0, width - 1)
    return field[..., iy, ix]


def _paint_strokes(
    canvas: torch.Tensor,
    rng: np.random.Generator,
    *,
    cell: float,
    length: float,
    width: float,
    angle: torch.Tensor | float,
    colour: torch.Tensor,
    colour_jitter: float = 0.06,
    swap_colours: np.ndarray | None = None,
    swap_probability: float = 0.0,
    coverage: float = 1.0,
    end_power: float = 4.0,
    bristles: float = 0.12,
    edge_dark: float = 0.18,
) -> torch.Tensor:
    """Paint one layer of oriented brush strokes (or dots) onto ``canvas`` ``[3,H,W]``.

    Strokes sit on a jittered grid of ``cell`` px; each takes its angle and colour from
    the fields at its centre, so a layer follows the underpainting. Everything is
    vectorized: every pixel tests the strokes of its 3x3 neighbouring cells, so stroke
    half-lengths are capped at one cell. ``end_power`` 2 gives round dots/ellipses,
    larger values flat brush ends; ``bristles`` streaks the paint along the stroke.
    """
    height, width_px = canvas.shape[1:]
    cell = max(float(cell), 2.0)
    ny, nx = math.ceil(height / cell) + 2, math.ceil(width_px / cell) + 2
    n = ny * nx
    gy, gx = np.meshgrid(np.arange(ny) - 1.0, np.arange(nx) - 1.0, indexing="ij")
    cy = torch.from_numpy(((gy + rng.uniform(0, 1, (ny, nx))) * cell).astype(np.float32))
    cx = torch.from_numpy(((gx + rng.uniform(0, 1, (ny, nx))) * cell).astype(np.float32))
    cy, cx = cy.flatten(), cx.flatten()
    if isinstance(angle, torch.Tensor):
        theta = _sample_at(angle, cy, cx)
    else:
        theta = torch.full((n,), float(angle))
    theta = theta + torch.from_numpy(rng.normal(0, 0.12, n).astype(np.float32))
    half_len = torch.from_numpy(
        np.minimum(length / 2 * rng.uniform(0.7, 1.3, n), cell).astype(np.float32)
    )
    half_wid = torch.from_numpy(
        np.maximum(width / 2 * rng.uniform(0.75, 1.25, n), 0.75).astype(np.float32)
    )
    half_wid = torch.minimum(half_wid, half_len)
    col = _sample_at(colour, cy, cx).T  # [n, 3]
    col = col + torch.from_numpy(rng.normal(0, colour_jitter, (n, 3)).astype(np.float32))
    if swap_colours is not None and swap_probability > 0:
        swap = rng.uniform(0, 1, n) < swap_probability
        pick = rng.integers(0, len(swap_colours), n)
        col[torch.from_numpy(swap)] = torch.from_numpy(swap_colours[pick[swap]])
    present = torch.from_numpy(rng.uniform(0, 1, n) < coverage)
    priority = torch.from_numpy(rng.uniform(0.01, 1, n).astype(np.float32))
    priority = torch.where(present, priority, torch.full_like(priority, -2.0))
    phase = torch.from_numpy(rng.uniform(0, 2 * math.pi, n).astype(np.float32))
    # one table, one gather per neighbour
    params = torch.stack(
        [cy, cx, theta.cos(), theta.sin(), half_len, half_wid, priority, phase, *col.T], dim=1
    )

    ys, xs = _grid(height, width_px)
    out = canvas.clone()
    # row bands bound the [rows, W, P] gathers to ~50 MB at any image size
    band = max(16, 1_200_000 // width_px)
    for top in range(0, height, band):
        rows = slice(top, min(top + band, height))
        out[:, rows] = _paint_band(
            out[:, rows], params, ys[rows], xs[rows], cell, nx, end_power, bristles, edge_dark
        )
    return out


def _paint_band(
    out: torch.Tensor,
    params: torch.Tensor,
    ys: torch.Tensor,
    xs: torch.Tensor,
    cell: float,
    nx: int,
    end_power: float,
    bristles: float,
    edge_dark: float,
) -> torch.Tensor:
    iy = (ys / cell).long() + 1
    ix = (xs / cell).long() + 1
    best = torch.full(ys.shape, -1.0)
    n = params.shape[0]
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            p = params[((iy + dy) * nx + (ix + dx)).clamp(0, n - 1)]  # [h, W, P]
            ry, rx = ys - p[..., 0], xs - p[..., 1]
            u = rx * p[..., 2] + ry * p[..., 3]
            v = ry * p[..., 2] - rx * p[..., 3]
            q = (u / p[..., 4]).abs() ** end_power + (v / p[..., 5]) ** 2
            hit = (q < 1.0) & (p[..., 6] > best)
            if not bool(hit.any()):
                continue
            streak = torch.sin(v / p[..., 5] * 4.5 + p[..., 7]) * torch.sin(
                v / p[..., 5] * 11.0 + 2 * p[..., 7]
            )
            shade = 1.0 + bristles * streak - edge_dark * q**3 + 0.06 * (u / p[..., 4])
            paint = p[..., 8:11].permute(2, 0, 1) * shade
            out = torch.where(hit, paint, out)
            best = torch.where(hit, p[..., 6], best)
    return out


def _worley(
    rng: np.random.Generator, height: int, width: int, cell: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Voronoi cells on a jittered grid: (nearest distance, second distance, cell id)."""
    cell = max(float(cell), 2.0)
    ny, nx = math.ceil(height / cell) + 2, math.ceil(width / cell) + 2
    gy, gx = np.meshgrid(np.arange(ny) - 1.0, np.arange(nx) - 1.0, indexing="ij")
    sy = torch.from_numpy(((gy + rng.uniform(0.1, 0.9, (ny, nx))) * cell).astype(np.float32))
    sx = torch.from_numpy(((gx + rng.uniform(0.1, 0.9, (ny, nx))) * cell).astype(np.float32))
    sy, sx = sy.flatten(), sx.flatten()
    ys, xs = _grid(height, width)
    iy = (ys / cell).long() + 1
    ix = (xs / cell).long() + 1
    d1 = torch.full((height, width), float("inf"))
    d2 = torch.full((height, width), float("inf"))
    ids = torch.zeros((height, width), dtype=torch.long)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            idx = ((iy + dy) * nx + (ix + dx)).clamp(0, ny * nx - 1)
            d = torch.hypot(ys - sy[idx], xs - sx[idx])
            closer = d < d1
            d2 = torch.where(closer, d1, torch.minimum(d2, d))
            d1 = torch.where(closer, d, d1)
            ids = torch.where(closer, idx, ids)
    return d1, d2, ids


def _canvas_grain(rng: np.random.Generator, height: int, width: int, unit: float) -> torch.Tensor:
    """Fine woven-canvas texture (multiplicative, around 1)."""
    weave = _noise(rng, height, width, max(1.5 * unit, 1.0), aspect=3.0) + _noise(
        rng, height, width, max(4.5 * unit, 1.0), aspect=1 / 3.0
    )
    return 1.0 + 0.025 * weave


# --------------------------------------------------------------------------- styles


def _swirling_flow(rng: np.random.Generator, h: int, w: int, unit: float) -> torch.Tensor:
    """Van Gogh-like night sky: dashed strokes along vortices, blues with yellow suns."""
    palette = _rgb(
        (12, 22, 64),
        (26, 52, 128),
        (44, 92, 170),
        (88, 142, 198),
        (150, 190, 206),
        (214, 214, 160),
        (240, 204, 72),
        (250, 226, 120),
    )
    ys, xs = _grid(h, w)
    scale = min(h, w)
    vy = torch.zeros(h, w)
    vx = torch.zeros(h, w)
    n_vortices = 5
    suns = torch.zeros(h, w)
    for _ in range(n_vortices):
        cy, cx = rng.uniform(0.05, 0.95) * h, rng.uniform(0.05, 0.95) * w
        radius = rng.uniform(0.08, 0.2) * scale
        spin = rng.choice([-1.0, 1.0]) * rng.uniform(0.8, 1.4)
        dy, dx = ys - cy, xs - cx
        r2 = dy**2 + dx**2
        strength = spin * radius / (r2 + radius**2).sqrt()
        vy += strength * dx / (r2.sqrt() + 1e-3)
        vx -= strength * dy / (r2.sqrt() + 1e-3)
        suns = torch.maximum(suns, torch.exp(-r2 / (2 * (0.35 * radius) ** 2)))
    wind = rng.uniform(0, 2 * math.pi)
    warp = _noise(rng, h, w, 0.25 * scale, octaves=2)
    vx += 0.6 * math.cos(wind) + 0.3 * warp
    vy += 0.6 * math.sin(wind) - 0.3 * warp
    angle = torch.atan2(vy, vx)

    sky = _equalize(_noise(rng, h, w, 0.3 * scale, octaves=3)) * 0.62
    t = (sky + 0.55 * suns).clamp(0, 1)
    base = _palette(t, palette)
    canvas = _paint_strokes(
        base,
        rng,
        cell=14 * unit,
        length=26 * unit,
        width=7 * unit,
        angle=angle,
        colour=base,
        colour_jitter=0.05,
        swap_colours=palette,
        swap_probability=0.08,
        bristles=0.1,
    )
    canvas = _paint_strokes(
        canvas,
        rng,
        cell=9 * unit,
        length=18 * unit,
        width=4.5 * unit,
        angle=angle,
        colour=base,
        colour_jitter=0.07,
        swap_colours=palette,
        swap_probability=0.12,
        coverage=0.85,
        bristles=0.14,
    )
    # halo rings around the suns
    rings = torch.sin(suns * 18.0) * suns * (suns < 0.9)
    canvas = canvas + 0.08 * rings * torch.tensor([1.0, 0.9, 0.3]).view(3, 1, 1)
    return canvas


def _pointillism(rng: np.random.Generator, h: int, w: int, unit: float) -> torch.Tensor:
    """Seurat-like: a park scene built from dots of pure colour on light canvas."""
    palette = _rgb(
        (34, 70, 110),
        (56, 110, 66),
        (104, 150, 70),
        (178, 190, 88),
        (236, 214, 130),
        (232, 150, 70),
        (214, 108, 112),
        (128, 96, 168),
    )
    scale = min(h, w)
    ys, _ = _grid(h, w)
    horizon = (ys / h - 0.45) * 1.4
    field = _equalize(_noise(rng, h, w, 0.22 * scale, octaves=3) + horizon)
    base = _palette(field, palette)
    canvas = torch.from_numpy(_rgb((238, 230, 208))[0]).view(3, 1, 1).expand(3, h, w)
    canvas = canvas * _canvas_grain(rng, h, w, unit)
    dot = 8.0 * unit
    for layer, (cover, swap) in enumerate([(1.0, 0.1), (0.9, 0.2), (0.7, 0.3)]):
        canvas = _paint_strokes(
            canvas,
            rng,
            cell=dot * (1.0 - 0.12 * layer),
            length=dot * 0.95,
            width=dot * 0.95,
            angle=0.0,
            colour=base,
            colour_jitter=0.05,
            swap_colours=palette,
            swap_probability=swap,
            coverage=cover,
            end_power=2.0,
            bristles=0.0,
            edge_dark=0.12,
        )
    return canvas


def _stained_glass(rng: np.random.Generator, h: int, w: int, unit: float) -> torch.Tensor:
    """Jewel-coloured glass panes with dark lead came between them."""
    palette = _rgb(
        (150, 16, 36),
        (22, 46, 140),
        (18, 116, 72),
        (232, 156, 30),
        (96, 36, 128),
        (28, 146, 158),
        (242, 206, 70),
        (200, 60, 40),
    )
    scale = min(h, w)
    d1, d2, ids = _worley(rng, h, w, 34 * unit)
    n_ids = int(ids.max()) + 1
    ys, xs = _grid(h, w)
    # panes follow a radial rose-window layout, plus per-pane randomness
    cy, cx = h * rng.uniform(0.35, 0.65), w * rng.uniform(0.35, 0.65)
    radial = torch.hypot(ys - cy, xs - cx) / scale
    ring = (radial * rng.uniform(5, 8) + 0.4 * _noise(rng, h, w, 0.2 * scale)).floor()
    pane_pick = torch.from_numpy(rng.integers(0, len(palette), n_ids))
    choice = torch.where(
        torch.from_numpy(rng.uniform(0, 1, n_ids) < 0.55)[ids],
        (ring.long() * 3) % len(palette),
        pane_pick[ids],
    )
    colour = torch.from_numpy(palette)[choice].permute(2, 0, 1)
    mottle = _noise(rng, h, w, 6 * unit, octaves=3)
    glow = 1.15 - 0.45 * (d1 / (d1 + d2 + 1e-6))
    glass = colour * (glow + 0.1 * mottle).unsqueeze(0)
    lead_width = 2.6 * unit
    edge = (d2 - d1) / 2
    lead = (1 - ((edge - lead_width) / (0.8 * unit + 0.5)).clamp(0, 1)).unsqueeze(0)
    came = torch.tensor([0.07, 0.065, 0.06]).view(3, 1, 1) * (
        1 + 0.5 * (1 - edge / lead_width).clamp(0, 1)
    )
    return glass * (1 - lead) + came * lead


def _cubist_shards(rng: np.random.Generator, h: int, w: int, unit: float) -> torch.Tensor:
    """Analytic-cubism facets in ochres, umbers and grey-blues, hatched and outlined."""
    palette = _rgb(
        (204, 160, 86),
        (168, 98, 52),
        (96, 64, 42),
        (128, 122, 74),
        (112, 128, 138),
        (228, 212, 172),
        (52, 46, 42),
        (186, 132, 70),
    )
    scale = min(h, w)
    ys, xs = _grid(h, w)
    n_lines = 16
    code = torch.zeros(h, w, dtype=torch.long)
    min_dist = torch.full((h, w), float("inf"))
    for i in range(n_lines):
        theta = rng.uniform(0, math.pi)
        py, px = rng.uniform(0.1, 0.9) * h, rng.uniform(0.1, 0.9) * w
        dist = (xs - px) * math.sin(theta) - (ys - py) * math.cos(theta)
        code = code | ((dist > 0).long() << i)
        min_dist = torch.minimum(min_dist, dist.abs())
    table = 1 << n_lines
    facet_colour = torch.from_numpy(palette[rng.integers(0, len(palette), table)])
    facet_angle = torch.from_numpy(rng.uniform(0, 2 * math.pi, table).astype(np.float32))
    hatch_angle = torch.from_numpy(rng.uniform(0, math.pi, table).astype(np.float32))
    colour = facet_colour[code].permute(2, 0, 1)
    a = facet_angle[code]
    ramp = ((xs * a.cos() + ys * a.sin()) / scale) % 1.0
    shade = 0.72 + 0.45 * ramp
    b = hatch_angle[code]
    hatch = torch.sin((xs * b.cos() + ys * b.sin()) / (2.2 * unit + 0.3))
    brush = _noise(rng, h, w, 3 * unit, octaves=2)
    canvas = colour * (shade + 0.09 * hatch + 0.07 * brush).unsqueeze(0)
    outline = (1 - (min_dist / (2.0 * unit + 0.5)).clamp(0, 1)) * (
        _noise(rng, h, w, 0.15 * scale) > -0.4
    )
    dark = torch.from_numpy(_rgb((40, 32, 26))[0]).view(3, 1, 1)
    canvas = canvas * (1 - outline) + dark * outline
    return canvas * _canvas_grain(rng, h, w, unit)


def _ink_wash(rng: np.random.Generator, h: int, w: int, unit: float) -> torch.Tensor:
    """Sumi-e landscape: misty mountain ridges in graded ink on warm rice paper."""
    paper = torch.from_numpy(_rgb((238, 230, 210))[0]).view(3, 1, 1)
    ink = torch.from_numpy(_rgb((22, 22, 26))[0]).view(3, 1, 1)
    scale = min(h, w)
    ys, xs = _grid(h, w)
    density = torch.zeros(h, w)
    # dry-brush texture strokes ("cun") run down the slopes
    fibre = _noise(rng, h, w, 1.5 * unit + 0.5, octaves=2, aspect=0.2)
    dry = (0.5 + 0.5 * torch.tanh(2.0 * fibre + 0.8)).clamp(0, 1)
    n_ridges = 4
    for i in range(n_ridges):
        base = h * (0.22 + 0.18 * i + rng.uniform(-0.04, 0.04))
        profile = _noise(rng, 1, w, 0.2 * scale, octaves=4)[0]
        ridge = base + profile * 0.1 * h
        depth = (ys - ridge).clamp(min=0)
        inside = (ys > ridge).float()
        fall = torch.exp(-depth / (0.1 * h + 1))  # mountains dissolve into mist below
        outline = torch.exp(-depth / (1.5 * unit + 0.5))
        layer = inside * (0.06 + 0.8 * fall * dry + 0.5 * outline).clamp(0, 1)
        strength = (0.35, 0.5, 0.7, 0.9)[i]
        density = torch.maximum(density, strength * layer)
    wash = _noise(rng, h, w, 0.08 * scale, octaves=3)
    density = density * (1 + 0.15 * wash)
    # a few bold calligraphic strokes (reeds) near the bottom
    reed_x = rng.uniform(0.05, 0.4) * w
    for _ in range(6):
        x0 = reed_x + rng.uniform(0, 0.2) * w
        lean = rng.uniform(-0.3, 0.3)
        bend = rng.uniform(-0.5, 0.5)
        top = h * rng.uniform(0.4, 0.75)
        centre = x0 + lean * (ys - h) + bend * (ys - h) ** 2 / h
        width = 4.5 * unit * (0.15 + 0.85 * ((ys - top) / (h - top + 1)).clamp(0, 1))
        stroke = ((xs - centre).abs() < width) & (ys > top)
        density = torch.where(
            stroke, torch.full_like(density, 0.92) + 0.08 * fibre.clamp(-1, 1), density
        )
    # ink splatter
    spots = _noise(rng, h, w, 2 * unit + 0.5) > 3.0
    density = torch.where(spots, torch.full_like(density, 0.8), density)
    density = density.clamp(0, 1).unsqueeze(0)
    canvas = paper * (1 - density) + ink * density
    canvas = canvas * (1 + 0.03 * _noise(rng, h, w, 2 * unit + 0.5, octaves=2)).unsqueeze(0)
    # red artist's seal
    side = max(round(0.07 * scale), 2)
    sy, sx = round(0.06 * h), round(w - 0.06 * w - side)
    seal = torch.from_numpy(_rgb((176, 34, 30))[0]).view(3, 1, 1)
    canvas[:, sy : sy + side, sx : sx + side] = seal * (
        1 + 0.25 * _noise(rng, side, side, max(side / 4, 1.0))
    ).clamp(0.5, 1.3)
    return canvas


def _brush_strokes(rng: np.random.Generator, h: int, w: int, unit: float) -> torch.Tensor:
    """Impressionist water garden: short horizontal dabs of teal, green, lilac and rose."""
    palette = _rgb(
        (30, 62, 86),
        (52, 104, 120),
        (88, 146, 132),
        (150, 188, 124),
        (200, 170, 206),
        (234, 196, 206),
        (246, 236, 196),
        (98, 84, 150),
    )
    scale = min(h, w)
    field = _noise(rng, h, w, 0.25 * scale, octaves=3) + 0.8 * _noise(
        rng, h, w, 0.12 * scale, aspect=4.0
    )
    base = _palette(_equalize(field), palette)
    angle = 0.25 * _noise(rng, h, w, 0.3 * scale)
    canvas = base * 0.9
    for cell, length, width, swap in [(20, 38, 11, 0.08), (13, 24, 7, 0.15), (8, 15, 4.5, 0.22)]:
        canvas = _paint_strokes(
            canvas,
            rng,
            cell=cell * unit,
            length=length * unit,
            width=width * unit,
            angle=angle,
            colour=base,
            colour_jitter=0.07,
            swap_colours=palette,
            swap_probability=swap,
            coverage=0.9,
            bristles=0.16,
        )
    return canvas * _canvas_grain(rng, h, w, unit)


def _mosaic_tiles(rng: np.random.Generator, h: int, w: int, unit: float) -> torch.Tensor:
    """Roman mosaic: small stone tesserae with grout, terracotta, gold and lapis bands."""
    palette = _rgb(
        (38, 34, 36),
        (176, 74, 46),
        (214, 168, 72),
        (232, 222, 192),
        (30, 108, 110),
        (40, 60, 122),
        (144, 38, 40),
        (120, 140, 80),
    )
    scale = min(h, w)
    ys, xs = _grid(h, w)
    tile = max(9.0 * unit, 2.5)
    # rows of tiles follow concentric waves (opus vermiculatum)
    wave = _noise(rng, h, w, 0.35 * scale, octaves=2) * 0.08 * scale
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    r = torch.hypot(ys - cy, xs - cx) + wave
    phi = torch.atan2(ys - cy, xs - cx)
    row = (r / tile).floor()
    arc = (phi * (r + 1e-3) / tile + 0.5 * row).floor()
    local_r = (r / tile) % 1.0
    local_a = (phi * (r + 1e-3) / tile + 0.5 * row) % 1.0
    band = ((row / rng.uniform(1.5, 3.0)).floor().long() * 5 + 3) % len(palette)
    key = (row.long() * 7919 + arc.long() * 104729) % 1000003
    lookup = torch.from_numpy(rng.uniform(0, 1, 1000003).astype(np.float32))
    rnd = lookup[key]
    pick = torch.where(rnd < 0.12, (band + 2) % len(palette), band)
    colour = torch.from_numpy(palette)[pick].permute(2, 0, 1)
    stone = 0.85 + 0.3 * lookup[(key * 31 + 17) % 1000003]
    gap = 0.12
    inner = torch.minimum(torch.minimum(local_r, 1 - local_r), torch.minimum(local_a, 1 - local_a))
    grout = (inner < gap).float().unsqueeze(0)
    bevel = (0.9 + 0.4 * inner.clamp(max=0.3)).unsqueeze(0)
    texture = 1 + 0.07 * _noise(rng, h, w, 1.5 * unit + 0.5, octaves=2)
    tiles = colour * (stone * texture).unsqueeze(0) * bevel
    grout_colour = torch.from_numpy(_rgb((150, 138, 118))[0]).view(3, 1, 1)
    return tiles * (1 - grout) + grout_colour * texture * grout


def _bold_strokes(rng: np.random.Generator, h: int, w: int, unit: float) -> torch.Tensor:
    """Expressionist sky: long flowing strokes of fiery orange, red and deep blue."""
    palette = _rgb(
        (30, 36, 92),
        (70, 50, 110),
        (140, 44, 70),
        (204, 58, 38),
        (232, 112, 40),
        (244, 176, 64),
        (248, 220, 130),
        (40, 104, 110),
    )
    scale = min(h, w)
    ys, xs = _grid(h, w)
    bands = ys / h + 0.25 * torch.sin(
        xs / scale * rng.uniform(4, 8) + rng.uniform(0, 6)
    ) * torch.cos(ys / scale * rng.uniform(2, 4))
    bands = bands + 0.15 * _noise(rng, h, w, 0.2 * scale, octaves=2)
    t = (bands * rng.uniform(2.5, 4.0)) % 2.0
    t = torch.where(t > 1, 2 - t, t)
    base = _palette(t, palette)
    gy, gx = torch.gradient(bands)
    angle = torch.atan2(-gx, gy)  # along the bands
    canvas = base
    for cell, length, width in [(22, 44, 12), (14, 28, 7)]:
        canvas = _paint_strokes(
            canvas,
            rng,
            cell=cell * unit,
            length=length * unit,
            width=width * unit,
            angle=angle,
            colour=base,
            colour_jitter=0.05,
            swap_colours=palette,
            swap_probability=0.1,
            coverage=0.95,
            bristles=0.2,
            edge_dark=0.3,
        )
    return canvas * _canvas_grain(rng, h, w, unit)


_GENERATORS: dict[
    str, tuple[Callable[[np.random.Generator, int, int, float], torch.Tensor], str]
] = {
    "swirling_flow": (_swirling_flow, "Van Gogh-like swirls: dashed strokes in blues and yellows"),
    "pointillism": (_pointillism, "Seurat-like dots of pure colour on light canvas"),
    "stained_glass": (_stained_glass, "jewel-coloured glass panes with dark leading"),
    "cubist_shards": (_cubist_shards, "analytic-cubist facets in ochre, umber and grey"),
    "ink_wash": (_ink_wash, "sumi-e ink wash landscape on rice paper"),
    "brush_strokes": (_brush_strokes, "impressionist dabs in teal, green, lilac and rose"),
    "mosaic_tiles": (_mosaic_tiles, "Roman mosaic tesserae with grout"),
    "bold_strokes": (_bold_strokes, "expressionist long strokes in fiery oranges and blues"),
}

#: Names accepted by :func:`generate_style`, in display order.
STYLE_NAMES: tuple[str, ...] = tuple(_GENERATORS)
#: One line per style, for ``--help`` and docs.
STYLE_DESCRIPTIONS: dict[str, str] = {name: desc for name, (_, desc) in _GENERATORS.items()}


def _parse_size(size: Size) -> tuple[int, int]:
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise ConfigError(f"style size must be an int or (height, width), got {size!r}")
        height, width = int(size[0]), int(size[1])
    else:
        height = width = int(size)
    if height < 8 or width < 8:
        raise ConfigError(f"style size {height}x{width} is too small; use at least 8x8")
    return height, width


def generate_style(name: str, size: Size = 512, seed: int = 0) -> torch.Tensor:
    """Paint the style ``name`` as a float32 ``[3, H, W]`` tensor in [0, 1].

    ``size`` is a side length or ``(height, width)``. Brush and tile sizes scale with
    the short side (they are drawn for 512 px), so a style looks the same at any size.
    The same (name, size, seed) always gives the same image.
    """
    if name not in _GENERATORS:
        raise ConfigError(f"unknown style {name!r}; choose from {', '.join(STYLE_NAMES)}")
    height, width = _parse_size(size)
    unit = min(height, width) / 512.0
    generator = _GENERATORS[name][0]
    with torch.no_grad():
        image = generator(_rng(name, seed), height, width, unit)
    return image.to(torch.float32).clamp_(0.0, 1.0).contiguous()


def sample_styles(
    size: Size = 512, seed: int = 0, names: Sequence[str] | None = None
) -> dict[str, torch.Tensor]:
    """All (or the named) generated styles at ``size`` for ``seed``."""
    return {
        name: generate_style(name, size, seed) for name in (STYLE_NAMES if names is None else names)
    }


def sample_targets(
    out_dir: str | os.PathLike,
    *,
    styles: Sequence[str] | None = None,
    contents: Sequence[str] | None = None,
) -> list[tuple[str, str, Path]]:
    """``(kind, name, path)`` of each file :func:`write_samples` writes (names checked)."""
    out = Path(out_dir)
    content_names = list(CONTENT_NAMES if contents is None else contents)
    style_names = list(STYLE_NAMES if styles is None else styles)
    for name in content_names:
        content_path(name)  # fail before writing anything
    for name in style_names:
        if name not in _GENERATORS:
            raise ConfigError(f"unknown style {name!r}; choose from {', '.join(STYLE_NAMES)}")
    return [("contents", n, out / "contents" / f"{n}.png") for n in content_names] + [
        ("styles", n, out / "styles" / f"{n}.png") for n in style_names
    ]


def write_samples(
    out_dir: str | os.PathLike,
    *,
    size: int = 512,
    seed: int = 0,
    styles: Sequence[str] | None = None,
    contents: Sequence[str] | None = None,
    progress: bool = True,
    overwrite: bool = True,
) -> dict[str, list[Path]]:
    """Write ``out_dir/contents/<name>.png`` and ``out_dir/styles/<name>.png``.

    Photos are resized so the long side is ``size``; styles are ``size`` x ``size``.
    With ``overwrite=False`` a file already there (someone's own image under a sample's
    name) is refused with :class:`~styledistill.outputs.OutputError` before anything is
    written. Returns ``{"contents": [paths], "styles": [paths]}``.
    """
    from .outputs import OutputError

    targets = sample_targets(out_dir, styles=styles, contents=contents)
    existing = [path for _, _, path in targets if os.path.lexists(path)]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise OutputError(
            f"--out {existing[0]}{more}: already exists; pass --overwrite to replace it"
        )
    written: dict[str, list[Path]] = {"contents": [], "styles": []}
    jobs = [(kind, name) for kind, name, _ in targets]
    out = Path(out_dir)
    bar = progress_bar(jobs, desc="samples", unit="img", enabled=progress and bool(jobs))
    for kind, name in bar:
        bar.set_postfix_str(name)
        if kind == "contents":
            image = sample_contents(size, [name])[name]
        else:
            image = generate_style(name, size, seed)
        written[kind].append(save_image(image, out / kind / f"{name}.png"))
    return written
