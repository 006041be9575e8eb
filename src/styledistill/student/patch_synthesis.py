"""One pass of patch-based texture synthesis, written for a network that must export.

The texture teacher grows its output from the style's own pixel patches: every patch of
the output is replaced by the nearest style patch, the overlaps are averaged with weights
that favour good matches, and the brightness is pulled back toward the content where the
content has edges. Soft attention over patches cannot do this: it averages many patches
into a blur. This module does the teacher's finest pass once, with a hard nearest-patch
choice, in operations ONNX knows (slices, reshapes, matmul, argmin, gather, pooling):

* :func:`style_patch_bank` cuts the style into ``side`` x ``side`` patches on the grids
  of :data:`BANK_SHIFTS` and flags those that overhang the real style;
* :func:`paste_nearest_patches` matches each half-overlapping patch of an image to the
  bank on its brightness pooled to an 8 x 8 grid and its chroma to 4 x 4, and
  overlap-adds the chosen full-resolution patches (triangular window times a robust
  match weight);
* :func:`fuse_luminance` keeps the pasted patches' chroma, pulls their brightness toward
  the content's on edges (detail added back), and matches the brightness histogram to
  the style's.

The student feeds the result to its last convolution, which learns where to trust it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..image_ops import luminance, scale_to_luminance

__all__ = [
    "BANK_SHIFTS",
    "DESCRIPTOR_CELLS",
    "bank_codes",
    "bank_patch_segments",
    "chroma_grid",
    "code_size",
    "edge_weight",
    "fold_patches",
    "fuse_luminance",
    "paste_nearest_patches",
    "patch_source",
    "style_codes",
    "style_patch_bank",
    "triangular_window",
    "unfold_patches",
]

#: By default a patch is matched on its brightness averaged over an 8 x 8 grid (and its
#: chroma over half that, unless told otherwise): on held-out teacher pairs a 4 x 4 grid
#: loses the content's edges.
DESCRIPTOR_CELLS = 8
#: The bank's grids of half-overlapping patches (one every ``side / 2`` px), each shifted
#: by (rows, cols) quarter patches. One grid, aligned with the content's patches (so an
#: image pasted from its own bank is itself): on held-out teacher pairs, searched
#: exactly, it closes 59% / 70% of the gap where the texture teacher's four grids (a
#: patch every ``side / 4`` px both ways) close 61% / 69%, at a quarter of their
#: matching cost (bench/distill_probes.py --match).
BANK_SHIFTS: tuple[tuple[int, int], ...] = ((1, 1),)
# Content patches scored against the bank at once (eager mode): bounds the score matrix
# however large the content (a 4000 px photo at native size has 250k patches), and a block
# that stays in cache is scored about 2x faster than one 4096-row matrix (measured).
_QUERY_BLOCK = 512
# The squared norm given to a patch that must never be chosen (real ones are <= 3*cells^2).
_NEVER = 1.0e4
# The robust aggregation of the teacher: a match counts ||x - z||^(r - 2), r = 0.8.
_ROBUST_EXPONENT = (0.8 - 2.0) / 2.0


def _neighbourhoods(padded: Tensor, rows: int, cols: int, stride: int) -> Tensor:
    """``[B,C,(rows+1)*s,(cols+1)*s]`` -> its ``2s`` x ``2s`` patches every ``s`` px,
    ``[B, rows*cols, C*2s*2s]`` (each a 2x2 group of s-blocks), with reshapes only."""
    batch, channels = padded.shape[:2]
    blocks = padded.reshape(batch, channels, rows + 1, stride, cols + 1, stride)
    quadrants = [blocks[:, :, a : a + rows, :, b : b + cols, :] for a in (0, 1) for b in (0, 1)]
    patch = torch.stack(quadrants, dim=0)  # [4, B, C, rows, s, cols, s], 4 = (a, b)
    patch = patch.reshape(2, 2, batch, channels, rows, stride, cols, stride)
    patch = patch.permute(2, 4, 6, 3, 0, 5, 1, 7)  # [B, rows, cols, C, a, ys, b, xs]
    return patch.reshape(batch, rows * cols, -1)


def unfold_patches(image: Tensor, side: int, stride: int, pad_mode: str = "replicate") -> Tensor:
    """``[B,C,H,W]`` -> ``[B, L, C*side*side]``: the ``side`` x ``side`` patches centred on
    each ``stride`` x ``stride`` cell (the overhang filled by ``pad_mode``: edge-replicated
    by default).

    ``side`` is ``stride`` or ``2 * stride``; written with slices and reshapes only (no
    im2col), so it exports to ONNX at any opset and matches ``F.unfold``.
    """
    batch, channels, height, width = image.shape
    rows, cols = height // stride, width // stride
    if side == stride:
        blocks = image.reshape(batch, channels, rows, stride, cols, stride)
        return blocks.permute(0, 2, 4, 1, 3, 5).reshape(batch, rows * cols, -1)
    margin = stride // 2
    padded = F.pad(image, (margin, margin, margin, margin), mode=pad_mode)
    return _neighbourhoods(padded, rows, cols, stride)


def fold_patches(patches: Tensor, rows: int, cols: int, side: int, stride: int) -> Tensor:
    """Overlap-add ``[B, rows*cols, C*side*side]`` patches into ``[B, C, rows*s, cols*s]``.

    The layout of :func:`unfold_patches` (the overhang is cropped), as sums of shifted
    reshapes (no col2im), so it exports to ONNX at any opset and matches ``F.fold``.
    """
    batch = patches.shape[0]
    if side == stride:
        blocks = patches.reshape(batch, rows, cols, -1, stride, stride)
        return blocks.permute(0, 3, 1, 4, 2, 5).reshape(batch, -1, rows * stride, cols * stride)
    if side != 2 * stride:
        raise ValueError(f"fold_patches: side {side} must be the stride {stride} or twice it")
    # each patch is 2x2 blocks of s x s; block (a, b) of patch (r, c) lands on block
    # (r + a, c + b) of a (rows+1) x (cols+1) grid: four shifted sums, then one transpose
    quads = patches.reshape(batch, rows, cols, -1, 2, stride, 2, stride)
    total = None
    for a in (0, 1):
        for b in (0, 1):  # [B, C, rows, cols, s, s], moved along rows and cols
            part = quads[:, :, :, :, a, :, b, :].permute(0, 3, 1, 2, 4, 5)
            part = F.pad(part, (0, 0, 0, 0, b, 1 - b, a, 1 - a))
            total = part if total is None else total + part
    assert total is not None
    image = total.permute(0, 1, 2, 4, 3, 5)
    image = image.reshape(batch, -1, (rows + 1) * stride, (cols + 1) * stride)
    margin = stride // 2
    return image[..., margin : margin + rows * stride, margin : margin + cols * stride]


def style_patch_bank(style: Tensor, style_mask: Tensor | None, side: int) -> tuple[Tensor, Tensor]:
    """Padded style ``[B,3,H,W]`` -> (patches ``[B, G*(H/s)*(W/s), 3*side*side]``,
    invalid ``[B, same]`` bool), ``s = side / 2``, ``G = len(BANK_SHIFTS)``.

    One half-overlapping grid per :data:`BANK_SHIFTS` entry, numbered grid by grid. A
    patch is invalid when any of its pixels lies outside the real style (the padding, or
    the replicated overhang at the border).
    """
    stride = side // 2
    rows, cols = style.shape[-2] // stride, style.shape[-1] // stride
    patches = [
        _neighbourhoods(shifted, rows, cols, stride)
        for shifted in _shifted_grids(style, stride, "replicate")
    ]
    return torch.cat(patches, dim=1), _invalid_patches(style, style_mask, side)


def _shifted_grids(image: Tensor, stride: int, pad_mode: str) -> list[Tensor]:
    """The bank's numbering, in one place: grid ``g`` starts at :data:`BANK_SHIFTS` ``[g]``
    times ``q = stride / 2``; each is ``image`` shifted so that grid starts at its corner
    and padded (``pad_mode``) by the shift plus one ``stride`` at the bottom and right."""
    quarter = stride // 2
    return [
        F.pad(image[..., dy:, dx:], (0, dx + stride, 0, dy + stride), mode=pad_mode)
        for dy, dx in ((rows * quarter, cols * quarter) for rows, cols in BANK_SHIFTS)
    ]


def _invalid_patches(style: Tensor, style_mask: Tensor | None, side: int) -> Tensor:
    """``[B, L]``: bank patches (numbered as :func:`style_patch_bank` does) with a pixel
    outside the real style (the padding, or the overhang at the border)."""
    real = (
        torch.ones_like(style[:, :1])
        if style_mask is None
        else (~style_mask).unsqueeze(1).to(style.dtype)
    )
    coverage = [
        F.avg_pool2d(inside, side, stride=side // 2)
        for inside in _shifted_grids(real, side // 2, "constant")
    ]
    return torch.cat([c.flatten(1) < 1.0 - 1e-4 for c in coverage], dim=1)


def chroma_grid(cells: int, chroma_cells: int | None = None) -> int:
    """The chroma grid's side in a match code: ``chroma_cells``, or half the brightness
    grid's ``cells`` when not given. It must be even and divide ``cells``."""
    return cells // 2 if chroma_cells is None else chroma_cells


def code_size(cells: int, chroma_cells: int | None = None) -> int:
    """Numbers in a patch's match code: brightness on a ``cells`` grid, chroma (two
    channels) on the :func:`chroma_grid`."""
    return cells * cells + 2 * chroma_grid(cells, chroma_cells) ** 2


def _match_code(pooled: Tensor, cells: int, chroma_cells: int | None = None) -> Tensor:
    """Patches' colours on a grid ``[B,N,3,c,c]`` -> brightness (Y) at ``c x c`` and
    chroma (Cb, Cr) on the coarser :func:`chroma_grid`, ``[B,N,code_size]``: the eye, and
    the texture teacher's matches, care more about where light and dark fall than about
    colour detail (on held-out teacher pairs chroma at 4 x 4 matches as well as full RGB
    at half the cost, and at 2 x 2 within 0.3% on either distance)."""
    red, blue = pooled[:, :, 0], pooled[:, :, 2]
    luma = luminance(pooled).squeeze(-3)
    chroma = torch.stack([0.564 * (blue - luma), 0.713 * (red - luma)], dim=2)
    grid = chroma_grid(cells, chroma_cells)  # Python ints: the export keeps batch and
    pool = cells // grid  # count dynamic
    chroma = chroma.unflatten(4, (grid, pool)).unflatten(3, (grid, pool)).mean(dim=(4, 6))
    return torch.cat([luma.flatten(2), chroma.flatten(2)], dim=-1)


def bank_codes(
    bank: Tensor,
    invalid: Tensor,
    side: int,
    cells: int = DESCRIPTOR_CELLS,
    chroma_cells: int | None = None,
) -> Tensor:
    """What matching needs of a bank, computed once per style: ``[B,L,code_size + 1]``,
    each patch's match code (:func:`_match_code`), then its squared norm (a huge value for
    invalid patches, so they are never chosen; finite, so it survives fp16)."""
    pool = side // cells
    shaped = bank.reshape(bank.shape[0], bank.shape[1], 3, cells, pool, cells, pool)
    codes = _match_code(shaped.mean(dim=(4, 6)), cells, chroma_cells)
    norms = codes.pow(2).sum(-1).masked_fill(invalid, _NEVER)
    return torch.cat([codes, norms.unsqueeze(-1)], dim=-1)


def style_codes(
    style: Tensor,
    style_mask: Tensor | None,
    side: int,
    cells: int = DESCRIPTOR_CELLS,
    chroma_cells: int | None = None,
) -> Tensor:
    """:func:`bank_codes` of :func:`style_patch_bank` without cutting the bank: the style
    is pooled to the code's grid first and each grid of the bank is read off the pooled
    image (4x fewer pixels, no 16x redundant patches). Equal to float rounding on every
    valid patch; invalid ones get the never-chosen norm."""
    pooled = F.avg_pool2d(style, side // cells)
    stride = cells // 2  # the bank's stride, side / 2, on the pooled grid
    rows, cols = pooled.shape[-2] // stride, pooled.shape[-1] // stride
    grids = [
        _neighbourhoods(shifted, rows, cols, stride)
        for shifted in _shifted_grids(pooled, stride, "replicate")
    ]
    codes = _match_code(
        torch.cat(grids, dim=1).unflatten(2, (3, cells, cells)), cells, chroma_cells
    )
    norms = codes.pow(2).sum(-1).masked_fill(_invalid_patches(style, style_mask, side), _NEVER)
    return torch.cat([codes, norms.unsqueeze(-1)], dim=-1)


def _tent(side: int, like: Tensor) -> Tensor:
    """The 1-D tent ``[2, side / 2]``, its rising then its falling half (device and dtype
    of ``like``): halves placed every ``side / 2`` px sum to exactly 1."""
    position = torch.arange(side, device=like.device, dtype=like.dtype) + 0.5 - side / 2
    return (1.0 - position.abs() / (side / 2)).view(2, side // 2)


def triangular_window(side: int, like: Tensor) -> Tensor:
    """Flattened ``side`` x ``side`` tent window (device and dtype of ``like``): patches
    placed every ``side / 2`` px under it sum to exactly 1 away from the borders."""
    ramp = _tent(side, like).flatten()
    return (ramp[:, None] * ramp[None, :]).flatten()


def patch_source(style: Tensor, side: int) -> tuple[Tensor, Tensor]:
    """Padded style ``[B,3,H,W]`` -> what pasting cuts bank patches from: the style as
    row segments of ``s = side / 2`` pixels, ``[B, G*3*H*W/s, s]``, once per bank grid
    (shifted so that the grid's patches start on a segment; the overhang replicated),
    and the bank's grid ``[B,2]`` (rows, cols) as numbers, so a graph that receives them
    needs no shape arithmetic. A pasted patch is 2 x 2 blocks of ``s`` segments, read
    straight into the output's layout; the 16x larger bank itself is never stored."""
    stride = side // 2
    height, width = style.shape[-2:]  # each grid's image cropped back to the style's size
    grids = [g[..., :height, :width] for g in _shifted_grids(style, stride, "replicate")]
    # counted with tensor ops, not read off the shape as Python numbers: an exported
    # style graph would keep the traced style's grid as a constant for every style
    rows = torch.ones_like(style[:, 0, :, 0]).sum(dim=1) / stride
    cols = torch.ones_like(style[:, 0, 0, :]).sum(dim=1) / stride
    segments = torch.stack(grids, dim=1).reshape(style.shape[0], -1, stride)
    return segments, torch.stack([rows, cols], dim=1).floor()


def bank_patch_segments(index: Tensor, grid: Tensor, side: int) -> Tensor:
    """Bank patches ``index [B,N]`` (numbered as :func:`style_patch_bank` numbers them)
    -> where their quadrants start in :func:`patch_source`'s segments, ``[B,2,2,N]``:
    element ``[:, a, b, n]`` numbers the top-left segment (channel 0, first row) of
    quadrant (a, b) of patch ``n``; channel ``c``, row ``y`` of it is ``c * H*W/s +
    y * W/s`` further (:func:`_segment_offsets`). A patch that overhangs the style
    (never chosen while a valid one exists) repeats its last row or column of blocks."""
    stride = side // 2
    rows, cols = grid.round().long().unbind(dim=1)  # [B] each
    rows, cols = rows[:, None, None], cols[:, None, None]
    per_grid = rows * cols
    index = index.unsqueeze(1)  # [B,1,N]
    shift = torch.div(index, per_grid, rounding_mode="floor")  # which grid
    cell = index - shift * per_grid
    row = torch.div(cell, cols, rounding_mode="floor")
    step = torch.arange(2, device=index.device).view(1, 2, 1)  # the quadrant's half
    block_row = torch.minimum(row + step, rows - 1)  # [B,2,N]
    block_col = torch.minimum(cell - row * cols + step, cols - 1)
    first = (shift * 3 * per_grid + block_row * cols) * stride  # [B,2,N]: a's segment rows
    return first.unsqueeze(2) + block_col.unsqueeze(1)


def _segment_offsets(grid: Tensor, side: int) -> Tensor:
    """``[B,3,s]``: how far channel ``c``, row ``y`` of a block lies from its top-left
    segment in :func:`patch_source`'s layout."""
    stride = side // 2
    rows, cols = grid.round().long().unbind(dim=1)
    channel = torch.arange(3, device=grid.device).view(1, 3, 1) * (rows * cols * stride).view(
        -1, 1, 1
    )
    row = torch.arange(stride, device=grid.device).view(1, 1, stride) * cols.view(-1, 1, 1)
    return channel + row


def paste_nearest_patches(
    image: Tensor,
    segments: Tensor,
    grid: Tensor,
    codes: Tensor,
    side: int,
    cells: int = DESCRIPTOR_CELLS,
    chroma_cells: int | None = None,
) -> Tensor:
    """Replace each half-overlapping ``side`` patch of ``image`` by its nearest bank patch.

    ``image [B,3,H,W]`` (H, W multiples of ``side / 2``); the style as ``segments`` and
    ``grid`` from :func:`patch_source` (a style batch of 1 serves every image) and the
    bank's ``codes`` from :func:`bank_codes` (same ``cells`` and ``chroma_cells``).
    Matches are found on brightness pooled to a ``cells`` grid and chroma to the
    :func:`chroma_grid` (``side`` a multiple of ``cells``, both grids even) and
    overlap-added with a triangular window times ``||x - z||^-0.6`` on those codes
    (badly matched patches count less). The choice itself passes no gradient.
    """
    batch, _, height, width = image.shape
    stride = side // 2
    rows, cols = height // stride, width // stride
    query = _query_codes(image, side, cells, chroma_cells)  # [B,N,code]
    best, nearest = _nearest_codes(query, codes)  # [B,N]
    distance = (best + query.pow(2).sum(-1)).clamp_min(0.0) / query.shape[-1]
    robust = (distance + 1e-4).pow(_ROBUST_EXPONENT).view(batch, 1, rows, cols)
    first = bank_patch_segments(nearest, grid, side).reshape(-1, 4, rows, cols)
    # the style's batch is 1 (shared) or B: its images' segments are numbered in a row
    count = segments.shape[1]
    first = first + torch.arange(segments.shape[0], device=image.device).view(-1, 1, 1, 1) * count
    offsets = _segment_offsets(grid, side)[:, :, None, :, None]  # [B,3,1,s,1]
    source = segments.flatten(0, 1)
    ramp = _tent(side, image)
    size = ((rows + 1) * stride, (cols + 1) * stride)
    # quadrant (a, b) of the patch at (r, c) lands on block (r + a, c + b) of the output's
    # (rows+1) x (cols+1) grid of s x s blocks; each row of a block is one s-pixel
    # segment of the style, read straight into the output's layout (no transpose)
    summed = total = None
    for quadrant, (a, b) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        placed = (b, 1 - b, a, 1 - a)
        number = F.pad(first[:, quadrant], placed)[:, None, :, None, :] + offsets
        chosen = source.index_select(0, number.flatten()).view(batch, 3, *size)
        # the window is separable: its rows, then its columns (one 6-D broadcast is slower)
        weight = F.pad(robust, placed)[:, :, :, None, :] * ramp[a].view(stride, 1)
        weight = (weight[..., None] * ramp[b]).view(batch, 1, *size)
        summed = chosen * weight if summed is None else summed + chosen * weight
        total = weight if total is None else total + weight
    assert summed is not None and total is not None
    margin = stride // 2
    crop = (..., slice(margin, margin + rows * stride), slice(margin, margin + cols * stride))
    return (summed / total.clamp_min(1e-8))[crop]  # one crop, not one for each


def _query_codes(image: Tensor, side: int, cells: int, chroma_cells: int | None = None) -> Tensor:
    """:func:`_match_code` of each half-overlapping ``side`` patch of ``image`` (its
    overhang reflected), ``[B, N, code_size]`` (chroma on the :func:`chroma_grid`):
    brightness and chroma planes are made once from the image pooled to the code's grid,
    then each plane is cut into patches, so the per-patch work touches 1 + 2/4 planes at
    most, not 3."""
    chroma_cells = chroma_grid(cells, chroma_cells)
    pooled = F.avg_pool2d(image, side // cells)
    margin = cells // 4  # half the patch stride on the pooled grid
    pooled = F.pad(pooled, (margin, margin, margin, margin), mode="reflect")
    luma = luminance(pooled)
    chroma = torch.cat([0.564 * (pooled[:, 2:3] - luma), 0.713 * (pooled[:, 0:1] - luma)], 1)
    rows, cols = (image.shape[-2] * 2) // side, (image.shape[-1] * 2) // side
    return torch.cat(
        [
            _neighbourhoods(luma, rows, cols, cells // 2),
            _neighbourhoods(
                F.avg_pool2d(chroma, cells // chroma_cells), rows, cols, chroma_cells // 2
            ),
        ],
        dim=-1,
    )


def _nearest_codes(query: Tensor, codes: Tensor) -> tuple[Tensor, Tensor]:
    """``min_s ||s||^2 - 2 q.s`` and its index for each query row, exactly: one matmul per
    block of rows (one block when exporting: the graph keeps its sizes dynamic)."""
    # ||q - s||^2 = ||q||^2 - 2 q.s + ||s||^2: all but ||q||^2 in one matmul, [q, 1].[-2s, ||s||^2]
    scorer = torch.cat([-2.0 * codes[..., :-1], codes[..., -1:]], dim=-1).transpose(1, 2)

    def nearest(rows: Tensor) -> tuple[Tensor, Tensor]:
        scores = F.pad(rows, (0, 1), value=1.0) @ scorer
        index = scores.argmin(dim=-1, keepdim=True)  # then one gather: min() exports as
        return scores.gather(-1, index).squeeze(-1), index.squeeze(-1)  # two full passes

    if torch.onnx.is_in_onnx_export() or query.shape[1] <= _QUERY_BLOCK:
        return nearest(query)
    found = [
        nearest(query[:, i : i + _QUERY_BLOCK]) for i in range(0, query.shape[1], _QUERY_BLOCK)
    ]
    return torch.cat([f[0] for f in found], dim=1), torch.cat([f[1] for f in found], dim=1)


def _box_blur(images: Tensor, radius: int) -> Tensor:
    """Mean over a ``2r+1`` square (edges replicated), as a row pass then a column pass."""
    padded = F.pad(images, (radius, radius, radius, radius), mode="replicate")
    rows = F.avg_pool2d(padded, (1, 2 * radius + 1), stride=1)
    return F.avg_pool2d(rows, (2 * radius + 1, 1), stride=1)


def edge_weight(content: Tensor, floor: float = 0.2, radius: int = 4, stride: int = 1) -> Tensor:
    """Where the content must survive, in [floor, 1]: its blurred gradient magnitude over
    about 2.5x its mean (near the 90th percentile on photos; no sort, so it exports).

    ``stride`` > 1: measured on the content pooled by ``stride`` (the blur's ``radius``
    shrunk alike) and upsampled bilinearly; the weight is a blurred map anyway, and on
    held-out teacher pairs half resolution scores the same at a quarter of the passes.
    """
    if stride > 1:
        pooled = edge_weight(F.avg_pool2d(content, stride), floor, max(1, radius // stride))
        return F.interpolate(pooled, scale_factor=stride, mode="bilinear", align_corners=False)
    gray = F.pad(luminance(content), (1, 1, 1, 1), mode="replicate")
    grad_x = gray[..., 1:-1, 2:] - gray[..., 1:-1, :-2]
    grad_y = gray[..., 2:, 1:-1] - gray[..., :-2, 1:-1]
    magnitude = _box_blur((grad_x.pow(2) + grad_y.pow(2) + 1e-12).sqrt(), radius)
    scale = 2.5 * magnitude.mean(dim=(2, 3), keepdim=True).clamp_min(1e-4)
    return floor + (1.0 - floor) * (magnitude / scale).clamp(0.0, 1.0)


def fuse_luminance(
    mosaic: Tensor, content_luminance: Tensor, weight: Tensor, detail_radius: int = 2
) -> Tensor:
    """Pull the mosaic's brightness toward ``content_luminance`` by ``weight`` (edges),
    keeping its R:G:B ratios and adding back the fine detail the average damped."""
    current = luminance(mosaic)
    fused = (current + weight * content_luminance) / (1.0 + weight)
    fused = fused + weight / (1.0 + weight) * (current - _box_blur(current, detail_radius))
    return scale_to_luminance(mosaic, fused, current)
