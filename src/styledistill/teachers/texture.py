"""The weight-free teacher: style transfer via texture synthesis (Elad & Milanfar, 2017).

The output is grown coarse to fine so that every local patch of it looks like some
patch of the style image, while a weight mask pulls it back toward the content where
the content has structure. Per scale and per patch size it repeats:

1. **match** - cut the current output into overlapping patches (a grid with a
   sub-sampling gap) and find each one's nearest style patch; the search runs in a
   PCA subspace of the style patches that keeps ``pca_energy`` of their variance;
2. **aggregate robustly (IRLS)** - rebuild the image from the matched style patches,
   each weighted by ``||x_ij - z_ij||^(r - 2)`` (``r = 0.8``), so badly matched patches
   count less; this minimises ``sum ||R_ij X - z_ij||^r`` instead of a plain L2 mean
   that would blur everything;
3. **fuse the content** - ``X = (X + W * C) / (1 + W)`` with ``W`` large on the
   content's edges and small in flat areas (``W`` stands in for the paper's
   segmentation mask), then the style detail that average damped is added back;
4. **transfer colour** - histogram matching of X to the style.

It starts from the content (in the style's colours) plus strong noise at the
coarsest scale, which lets the first, large patches replace it with style texture.
Everything is vectorised (unfold/fold, batched matmul distances); the Python loops
run over scales, patch sizes and iterations only.

Deliberate departures from the paper (see :class:`TextureTeacher` for the switches):

* ``content_fusion="luminance"`` fuses only brightness (``C`` = the content's luma,
  histogram-matched to the style's) by scaling each pixel's RGB, and
  ``colour_transfer="luminance"`` matches the luma histogram the same way. Both keep
  the R:G:B ratios of the pasted style patches, so the palette is the style's alone;
  the paper's per-channel RGB matching (``"rgb"``) re-mixes channels and leaves colours
  the style never uses (a red nose on a grey ink painting).
* content fusion no longer damps the style's fine texture (``fusion_detail_radius=2``
  adds back the output detail the average took away) and there is no final denoiser:
  on real paintings this moves the output's texture statistics ~40% of the way from the
  content's toward the style's, where the plain average with a guided-filter denoiser
  moved them away (-42%; bench/RESULTS.md, "Texture teacher defaults");
* default gaps ``(28, 18, 11, 8)`` instead of ``(28, 18, 8, 5)``: with the paper's
  small gaps each pixel averages 2-4 overlapping patches, which blurs the style's
  crisp colours into in-between ones (RGB-uv histogram distance to the style ~2x
  higher on flat-colour styles such as mosaics); grid offsets that change every
  iteration hide the seams instead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..image_ops import box_filter, edge_mask, luminance, scale_to_luminance
from ..images import center_crop_resize, load_image
from ..values import first_non_finite
from .base import ImageLike, pair_up
from .registry import check_teacher_memory

__all__ = ["PreparedTextureStyle", "TextureTeacher", "match_histograms"]

# Rows of the (output patches x style patches) distance matrix computed at once; bounds
# the temporary to ~16 MB whatever the image size.
_DISTANCE_BLOCK_ELEMENTS = 4_000_000
# Seed of the randomized PCA. Fixed (not the stylize seed) so a prepared style is the
# same whichever pair asked for it first.
_PCA_SEED = 1234


# --------------------------------------------------------------------------- prepared style


@dataclass(frozen=True)
class _PatchBank:
    """Style patches of one size at one scale, plus their PCA subspace for matching."""

    patch_size: int
    patches: torch.Tensor  # [N, 3*n*n] raw style patches (what gets pasted)
    mean: torch.Tensor  # [3*n*n] patch mean (PCA centre)
    basis: torch.Tensor  # [3*n*n, k] principal directions
    projected_sq_norm: torch.Tensor  # [N] ||projected||^2, for the distance expansion
    projected: torch.Tensor  # [N, k] patches in PCA coordinates

    @property
    def components(self) -> int:
        return int(self.basis.shape[1])


@dataclass(frozen=True)
class _StyleLevel:
    """The style at one pyramid scale."""

    side: int
    image: torch.Tensor  # [3, side, side]
    colour_mean: torch.Tensor  # [3, 1] mean colour
    colour_axes: torch.Tensor  # [3, 3] axes colours are matched along (columns)
    sorted_values: torch.Tensor  # [3, side*side] sorted style values along each axis
    sorted_luminance: torch.Tensor  # [side*side] sorted style luminance
    banks: dict[int, _PatchBank]

    def transfer_colours(self, image: torch.Tensor) -> torch.Tensor:
        """Give ``image`` [3,H,W] this style's colour distribution, axis by axis."""
        channels, height, width = image.shape
        flat = image.reshape(channels, -1) - self.colour_mean
        coords = (self.colour_axes.t() @ flat).reshape(channels, height, width)
        matched = match_histograms(coords, self.sorted_values).reshape(channels, -1)
        return (self.colour_axes @ matched + self.colour_mean).reshape(channels, height, width)

    def transfer_luminance(self, image: torch.Tensor) -> torch.Tensor:
        """Luminance ``[1,H,W]`` of ``image``, histogram-matched to this style's."""
        return match_histograms(luminance(image), self.sorted_luminance.unsqueeze(0))

    def transfer_brightness(self, image: torch.Tensor) -> torch.Tensor:
        """Match ``image``'s luminance histogram to the style's by scaling RGB per pixel.

        R:G:B ratios (the chroma the RGB-uv histogram measures) stay untouched.
        """
        return scale_to_luminance(image, self.transfer_luminance(image))


@dataclass(frozen=True)
class PreparedTextureStyle:
    """A style image analysed once (pyramid, patch banks, PCA) and reusable for many pairs.

    ``settings_key`` fingerprints the teacher settings it was made with; a teacher with
    different settings refuses it instead of silently producing something else.
    """

    image: torch.Tensor  # [3, size, size]
    levels: tuple[_StyleLevel, ...]
    settings_key: str

    def pca_components(self) -> dict[str, int]:
        """How many PCA dimensions each (scale side, patch size) kept (for reports)."""
        return {
            f"{level.side}px/p{size}": bank.components
            for level in self.levels
            for size, bank in level.banks.items()
        }


# --------------------------------------------------------------------------- building blocks


def match_histograms(image: torch.Tensor, sorted_reference: torch.Tensor) -> torch.Tensor:
    """Exact per-channel histogram specification of ``image`` [3,H,W] to a reference.

    ``sorted_reference`` is ``[3, M]``, each channel's reference values sorted. Each
    pixel takes the reference value at its own rank's quantile (linear interpolation),
    so the output's per-channel distribution equals the reference's. Ties are broken
    by position (stable sort), which keeps it deterministic.
    """
    channels, height, width = image.shape
    flat = image.reshape(channels, -1)
    count = flat.shape[1]
    ref_count = sorted_reference.shape[1]
    order = torch.sort(flat, dim=1, stable=True).indices
    position = (torch.arange(count, dtype=torch.float32) + 0.5) * (ref_count / count) - 0.5
    position = position.clamp(0, ref_count - 1)
    low = position.floor().long()
    high = (low + 1).clamp_max(ref_count - 1)
    frac = (position - low.float()).unsqueeze(0)
    values = sorted_reference[:, low] * (1 - frac) + sorted_reference[:, high] * frac
    out = torch.empty_like(flat)
    out.scatter_(1, order, values)
    return out.reshape(channels, height, width)


def _colour_axes(image: torch.Tensor, space: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and axes for colour transfer: RGB itself, or the style's principal colours.

    Matching along the style's principal colour axes (decorrelated for the style)
    moves the joint colour distribution much closer than matching R, G, B separately,
    which can leave colours the style never uses (a red nose on a grey ink painting).
    """
    flat = image.reshape(3, -1)
    if space == "rgb":
        return torch.zeros(3, 1), torch.eye(3)
    mean = flat.mean(1, keepdim=True)
    centred = (flat - mean).double()
    _, axes = torch.linalg.eigh(centred @ centred.t() / centred.shape[1])
    axes = axes.flip(1)
    axes = axes * torch.where(axes.sum(0) < 0, -1.0, 1.0).to(axes.dtype)  # fixed signs
    return mean, axes.float()


def _resize(image: torch.Tensor, side: int) -> torch.Tensor:
    if image.shape[-1] == side and image.shape[-2] == side:
        return image
    return F.interpolate(
        image.unsqueeze(0),
        size=(side, side),
        mode="bilinear",
        align_corners=False,
        antialias=side < image.shape[-1],
    )[0].clamp(0.0, 1.0)


def _pca_basis(
    centred: torch.Tensor, energy: float, max_components: int, exact: bool
) -> torch.Tensor:
    """Principal directions ``[d, k]`` keeping ``energy`` of the variance (k <= max).

    ``exact`` uses an eigendecomposition of the d x d covariance (float64); otherwise a
    seeded randomized range finder (Halko et al.) that only touches ``N x q`` products,
    which is what makes 3267-dim (33x33x3) patches affordable.
    """
    count, dim = centred.shape
    total = float(centred.pow(2).sum())
    limit = max(1, min(max_components, dim, count))
    if total <= 0:
        return torch.eye(dim, limit, dtype=centred.dtype)
    if exact:
        cov = centred.double().t() @ centred.double()
        eigvals, eigvecs = torch.linalg.eigh(cov)
        eigvals, eigvecs = eigvals.flip(0).clamp_min(0), eigvecs.flip(1)
        variances = eigvals[:limit]
        basis = eigvecs[:, :limit].float()
    else:
        generator = torch.Generator().manual_seed(_PCA_SEED)
        sketch = min(dim, count, limit + 10)
        omega = torch.randn(dim, sketch, generator=generator)
        range_ = centred @ omega
        for _ in range(1):  # a power iteration sharpen the spectrum of patch data
            range_, _ = torch.linalg.qr(range_)
            range_ = centred @ (centred.t() @ range_)
        q, _ = torch.linalg.qr(range_)
        small = q.t() @ centred  # [sketch, d]
        _, singular, vh = torch.linalg.svd(small, full_matrices=False)
        variances = singular[:limit].double().pow(2)
        basis = vh[:limit].t().contiguous()
    cumulative = torch.cumsum(variances, 0) / total
    reached = torch.nonzero(cumulative >= energy)
    keep = int(reached[0]) + 1 if len(reached) else limit
    return basis[:, :keep].contiguous()


# --------------------------------------------------------------------------- the teacher


class TextureTeacher:
    """Elad & Milanfar (2017) style transfer via texture synthesis; needs no weights.

    Settings (all in :meth:`config`, so dataset manifests record them):

    * ``size`` - output side; content and style are centre-cropped and resized to it
      (StyleID's preprocessing, so datasets look alike whichever teacher made them).
    * ``seed`` - seeds the starting noise; same seed, same output (on CPU).
    * ``scales`` - pyramid, as fractions of ``size``, run coarse to fine. Coarse scales
      place large style structures cheaply; the fine scale adds detail.
    * ``patch_sizes`` / ``gaps`` - patch sides (largest first) and the grid step between
      neighbouring output patches for each. Large patches copy larger style motifs;
      gaps smaller than the patch make patches overlap so seams average out.
    * ``max_patch_fraction`` - a patch size is used at a scale only if it is at most
      this fraction of that scale's side (a 33-px patch means nothing on a 40-px image).
    * ``finest_patch_sizes`` - the patch sizes used at the finest scale (None: all that
      fit). Coarser scales have already placed the large motifs, so the finest scale
      only refines detail; skipping its 33/21-px banks halves the time. "auto" (the
      default) keeps 13 and 9 where patch_sizes has them, else uses all.
    * ``iterations`` - match/aggregate/fuse rounds per patch size (paper: I_alg).
    * ``irls_steps`` - reweighting steps per round with the matches held fixed.
    * ``robust_r`` - the r of the robust ``||.||^r`` aggregation (0.8 in the paper);
      r = 2 would be a plain average.
    * ``content_weight`` - strength of the pull toward the content (W's maximum):
      higher keeps more of the photo, lower gives more style texture.
    * ``content_mask_floor`` - W in flat content regions, as a fraction of the maximum.
    * ``noise_sigma`` - std of the Gaussian noise added to the start image (0..1 scale).
    * ``style_stride`` - step between style patches in the patch bank (1 = all of them);
      raised automatically so a bank holds at most ``max_style_patches``.
    * ``style_rotations`` - 1 to 4: also take patches from the style rotated by 90°,
      180°, 270° (more texture variety, slower).
    * ``pca_energy`` / ``pca_max_components`` - how much patch variance the matching
      subspace keeps, and its largest dimension.
    * ``exact_pca`` - full covariance eigendecomposition instead of randomized PCA
      (slower for big patches; for comparison).
    * ``fusion_detail_radius`` - after the content fusion, add back the style detail
      it damped (the output minus its box-filtered mean, radius r), so the pasted style
      texture keeps its strength while the content's layout and edges stay; 2 by
      default, 0 is the paper's plain average.
    * ``content_fusion`` - ``"luminance"`` (default) pulls only brightness toward the
      content, keeping the style patches' chroma; ``"rgb"`` is the paper's
      ``(X + W C) / (1 + W)`` with C the colour-matched content.
    * ``colour_transfer`` - after each round: ``"luminance"`` (default) matches the
      luma histogram by scaling RGB (chroma kept); ``"style_pca"`` matches each axis
      of the style's principal colour axes; ``"rgb"`` matches R, G, B separately
      (the paper).
    """

    name = "texture"

    def __init__(
        self,
        *,
        size: int = 256,
        seed: int = 0,
        scales: Sequence[float] = (0.25, 0.5, 1.0),
        patch_sizes: Sequence[int] = (33, 21, 13, 9),
        gaps: Sequence[int] = (28, 18, 11, 8),
        max_patch_fraction: float = 0.5,
        finest_patch_sizes: Sequence[int] | str | None = "auto",
        iterations: int = 2,
        irls_steps: int = 3,
        robust_r: float = 0.8,
        content_weight: float = 1.0,
        content_mask_floor: float = 0.2,
        noise_sigma: float = 0.2,
        style_stride: int = 2,
        max_style_patches: int = 6000,
        style_rotations: int = 1,
        pca_energy: float = 0.95,
        pca_max_components: int = 48,
        exact_pca: bool = False,
        content_fusion: str = "luminance",
        fusion_detail_radius: int = 2,
        colour_transfer: str = "luminance",
        max_pixels: int | None = None,
    ) -> None:
        self.size = int(size)
        self.seed = int(seed)
        self.scales = tuple(float(s) for s in scales)
        self.patch_sizes = tuple(int(p) for p in patch_sizes)
        self.gaps = tuple(int(g) for g in gaps)
        self.max_patch_fraction = float(max_patch_fraction)
        if finest_patch_sizes == "auto":  # (13, 9) where both exist, else what exists, else all
            kept = tuple(p for p in (13, 9) if p in self.patch_sizes)
            finest_patch_sizes = kept or None
        self.finest_patch_sizes = (
            None if finest_patch_sizes is None else tuple(int(p) for p in finest_patch_sizes)
        )
        self.iterations = int(iterations)
        self.irls_steps = int(irls_steps)
        self.robust_r = float(robust_r)
        self.content_weight = float(content_weight)
        self.content_mask_floor = float(content_mask_floor)
        self.noise_sigma = float(noise_sigma)
        self.style_stride = int(style_stride)
        self.max_style_patches = int(max_style_patches)
        self.style_rotations = int(style_rotations)
        self.pca_energy = float(pca_energy)
        self.pca_max_components = int(pca_max_components)
        self.exact_pca = bool(exact_pca)
        self.content_fusion = str(content_fusion)
        self.fusion_detail_radius = int(fusion_detail_radius)
        self.colour_transfer = str(colour_transfer)
        self._validate()
        check_teacher_memory("texture", self.size, max_pixels=max_pixels)
        self._settings_key = hashlib.sha1(
            json.dumps(self._style_settings(), sort_keys=True).encode()
        ).hexdigest()[:16]

    # ------------------------------------------------------------------ protocol

    def config(self) -> dict[str, Any]:
        """Every setting that affects the output (JSON-serializable)."""
        return {
            "teacher": self.name,
            "size": self.size,
            "seed": self.seed,
            "scales": list(self.scales),
            "patch_sizes": list(self.patch_sizes),
            "gaps": list(self.gaps),
            "max_patch_fraction": self.max_patch_fraction,
            "finest_patch_sizes": (
                None if self.finest_patch_sizes is None else list(self.finest_patch_sizes)
            ),
            "iterations": self.iterations,
            "irls_steps": self.irls_steps,
            "robust_r": self.robust_r,
            "content_weight": self.content_weight,
            "content_mask_floor": self.content_mask_floor,
            "noise_sigma": self.noise_sigma,
            "style_stride": self.style_stride,
            "max_style_patches": self.max_style_patches,
            "style_rotations": self.style_rotations,
            "pca_energy": self.pca_energy,
            "pca_max_components": self.pca_max_components,
            "exact_pca": self.exact_pca,
            "content_fusion": self.content_fusion,
            "fusion_detail_radius": self.fusion_detail_radius,
            "colour_transfer": self.colour_transfer,
        }

    def model_info(self) -> dict[str, Any]:
        """No weights are involved."""
        return {}

    def prepare_style(self, style: ImageLike) -> PreparedTextureStyle:
        """Analyse a style once: pyramid, patch banks per (scale, patch size), PCA."""
        if isinstance(style, PreparedTextureStyle):
            self._check_prepared(style)
            return style
        image = center_crop_resize(load_image(style), self.size)
        levels = []
        for side in self._level_sides():
            scaled = _resize(image, side)
            banks = {n: self._build_bank(scaled, n) for n in self._patch_sizes_for(side)}
            mean, axes = _colour_axes(
                scaled, "rgb" if self.colour_transfer == "rgb" else "style_pca"
            )
            coords = axes.t() @ (scaled.reshape(3, -1) - mean)
            levels.append(
                _StyleLevel(
                    side=side,
                    image=scaled,
                    colour_mean=mean,
                    colour_axes=axes,
                    sorted_values=torch.sort(coords, dim=1).values,
                    sorted_luminance=torch.sort(luminance(scaled).flatten()).values,
                    banks=banks,
                )
            )
        return PreparedTextureStyle(
            image=image, levels=tuple(levels), settings_key=self._settings_key
        )

    def stylize(
        self,
        contents: Sequence[ImageLike] | torch.Tensor,
        styles: Sequence[Any] | torch.Tensor,
        *,
        batch_size: int | None = None,
        seeds: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Stylize each (content, style) pair; returns ``[B, 3, size, size]`` in [0, 1].

        ``styles`` may hold images or :class:`PreparedTextureStyle` objects, one per
        content (or a single one for all). ``seeds`` (one per pair) default to ``seed``.
        Pairs run one after another: the work is matmul-bound and already uses every
        core, and it keeps each output bit-identical however pairs are batched, so
        ``batch_size`` only bounds how many pairs are held prepared at once.
        """
        content_list, style_list, seed_list = pair_up(
            "texture", contents, styles, batch_size=batch_size, seeds=seeds, default_seed=self.seed
        )
        outputs = []
        prepared_cache: dict[int, PreparedTextureStyle] = {}
        for content, style, seed in zip(content_list, style_list, seed_list):
            key = id(style)
            if key not in prepared_cache:
                prepared_cache[key] = self.prepare_style(style)
            content_image = center_crop_resize(load_image(content), self.size)
            outputs.append(self._synthesize(content_image, prepared_cache[key], seed))
        return torch.stack(outputs)

    # ------------------------------------------------------------------ internals

    def _validate(self) -> None:
        def fail(message: str) -> None:
            raise ConfigError(f"texture teacher: {message}")

        if self.size < 16:
            fail(f"size must be >= 16, got {self.size}")
        if not self.scales or any(not 0 < s <= 1 for s in self.scales):
            fail(f"scales must be fractions in (0, 1], got {list(self.scales)}")
        if list(self.scales) != sorted(self.scales):
            fail(f"scales must run coarse to fine (ascending), got {list(self.scales)}")
        if not self.patch_sizes or len(self.patch_sizes) != len(self.gaps):
            fail(
                f"patch_sizes {list(self.patch_sizes)} and gaps {list(self.gaps)} "
                "must be non-empty and the same length"
            )
        for n, gap in zip(self.patch_sizes, self.gaps):
            if n < 2 or not 1 <= gap <= n:
                fail(f"patch size {n} needs 1 <= gap <= {n}, got gap {gap}")
        if self.finest_patch_sizes is not None and (
            not self.finest_patch_sizes
            or any(n not in self.patch_sizes for n in self.finest_patch_sizes)
        ):
            fail(
                f"finest_patch_sizes {list(self.finest_patch_sizes)} must be a non-empty "
                f"subset of patch_sizes {list(self.patch_sizes)}"
            )
        if list(self.patch_sizes) != sorted(self.patch_sizes, reverse=True):
            fail(f"patch_sizes must run large to small, got {list(self.patch_sizes)}")
        if not 0 < self.max_patch_fraction <= 1:
            fail(f"max_patch_fraction must be in (0, 1], got {self.max_patch_fraction}")
        if self.iterations < 1 or self.irls_steps < 1:
            fail("iterations and irls_steps must be >= 1")
        if not 0 < self.robust_r <= 2:
            fail(f"robust_r must be in (0, 2], got {self.robust_r}")
        if self.content_weight < 0 or not 0 <= self.content_mask_floor <= 1:
            fail("content_weight must be >= 0 and content_mask_floor in [0, 1]")
        for key, value in self.config().items():
            if first_non_finite(value) is not None:
                fail(f"{key} must be a finite number, got {value!r}")
        if self.noise_sigma < 0:
            fail(f"noise_sigma must be >= 0, got {self.noise_sigma}")
        if self.style_stride < 1 or self.max_style_patches < 16:
            fail("style_stride must be >= 1 and max_style_patches >= 16")
        if not 1 <= self.style_rotations <= 4:
            fail(f"style_rotations must be 1..4, got {self.style_rotations}")
        if not 0 < self.pca_energy <= 1 or self.pca_max_components < 1:
            fail("pca_energy must be in (0, 1] and pca_max_components >= 1")
        if self.fusion_detail_radius < 0:
            fail(f"fusion_detail_radius must be >= 0, got {self.fusion_detail_radius}")
        if self.content_fusion not in ("luminance", "rgb"):
            fail(f"content_fusion must be 'luminance' or 'rgb', got {self.content_fusion!r}")
        if self.colour_transfer not in ("luminance", "style_pca", "rgb"):
            fail(
                "colour_transfer must be 'luminance', 'style_pca' or 'rgb', "
                f"got {self.colour_transfer!r}"
            )
        if not self._level_sides():
            fail(
                f"size {self.size} is too small for patch size {min(self.patch_sizes)} "
                f"at max_patch_fraction {self.max_patch_fraction}"
            )

    def _style_settings(self) -> dict[str, Any]:
        keys = (
            "size", "scales", "patch_sizes", "max_patch_fraction", "finest_patch_sizes",
            "style_stride",
            "max_style_patches", "style_rotations", "pca_energy", "pca_max_components",
            "exact_pca", "colour_transfer",
        )  # fmt: skip
        return {key: self.config()[key] for key in keys}

    def _check_prepared(self, style: PreparedTextureStyle) -> None:
        if style.settings_key != self._settings_key:
            raise ConfigError(
                "texture teacher: prepared style was made with different settings; "
                "prepare it again with this teacher"
            )

    def _level_sides(self) -> list[int]:
        """Pyramid sides, coarse to fine; scales too small for any patch are skipped."""
        sides = []
        for scale in self.scales:
            side = max(1, round(self.size * scale))
            if self._patch_sizes_for(side) and (not sides or side > sides[-1]):
                sides.append(side)
        return sides

    def _patch_sizes_for(self, side: int) -> list[int]:
        sizes = [n for n in self.patch_sizes if n <= self.max_patch_fraction * side]
        finest = max(1, round(self.size * self.scales[-1]))
        if side == finest and self.finest_patch_sizes is not None and len(self.scales) > 1:
            sizes = [n for n in sizes if n in self.finest_patch_sizes]
        return sizes

    def _gap(self, patch_size: int) -> int:
        return self.gaps[self.patch_sizes.index(patch_size)]

    def _build_bank(self, style: torch.Tensor, n: int) -> _PatchBank:
        """All style patches of side ``n`` (strided, capped), centred and PCA-projected."""
        side = style.shape[-1]
        rotations = [torch.rot90(style, k, dims=(1, 2)) for k in range(self.style_rotations)]
        per_image = max(1, self.max_style_patches // len(rotations))
        stride = self.style_stride
        while ((side - n) // stride + 1) ** 2 > per_image:
            stride += 1
        patches = torch.cat(
            [F.unfold(image.unsqueeze(0), n, stride=stride)[0].t() for image in rotations]
        ).contiguous()  # [N, 3*n*n], (channel, row, col) order like the output patches
        mean = patches.mean(0)
        centred = patches - mean
        basis = _pca_basis(centred, self.pca_energy, self.pca_max_components, self.exact_pca)
        projected = (centred @ basis).contiguous()
        return _PatchBank(
            patch_size=n,
            patches=patches,
            mean=mean,
            basis=basis,
            projected_sq_norm=projected.pow(2).sum(1),
            projected=projected,
        )

    def _synthesize(
        self, content: torch.Tensor, style: PreparedTextureStyle, seed: int
    ) -> torch.Tensor:
        self._check_prepared(style)
        generator = torch.Generator().manual_seed(seed)
        output: torch.Tensor | None = None
        for level in style.levels:
            content_here = _resize(content, level.side)
            content_in_style_colours = level.transfer_colours(content_here)
            content_luminance = level.transfer_luminance(content_here)
            weight = self.content_weight * edge_mask(content_here, self.content_mask_floor)
            if output is None:  # noisy start at the coarsest scale
                noise = torch.randn(content_here.shape, generator=generator)
                output = content_in_style_colours + self.noise_sigma * noise
            else:
                output = _resize(output, level.side)
            for n in self._patch_sizes_for(level.side):
                bank = level.banks[n]
                gap = self._gap(n)
                for iteration in range(self.iterations):
                    offset = (iteration * gap) // self.iterations  # shifts the grid's seams
                    output = self._aggregate(output, bank, gap, offset)
                    if self.content_fusion == "luminance":
                        # brightness moves toward the content; chroma (R:G:B) stays
                        # exactly that of the pasted style patches
                        current = luminance(output)
                        target = self._fuse(current, content_luminance, weight)
                        output = scale_to_luminance(output, target, current)
                    else:
                        output = self._fuse(output, content_in_style_colours, weight)
                    output = output.clamp(0, 1)
                    if self.colour_transfer == "luminance":
                        output = level.transfer_brightness(output)
                    else:
                        output = level.transfer_colours(output)
        assert output is not None
        return output.clamp(0.0, 1.0).contiguous()

    def _fuse(
        self, current: torch.Tensor, content: torch.Tensor, weight: torch.Tensor
    ) -> torch.Tensor:
        """``(X + W C) / (1 + W)``, plus (with a detail radius) the style detail it damped.

        The plain average scales the pasted style texture by ``1 / (1 + W)``; adding back
        ``W / (1 + W)`` of X's detail (X minus its box-filtered mean) keeps that texture
        at full strength, while the content's means and fine edges still come through.
        """
        fused = (current + weight * content) / (1 + weight)
        radius = self.fusion_detail_radius
        if radius <= 0 or min(current.shape[-2:]) <= 2 * radius:
            return fused
        return fused + weight / (1 + weight) * (current - box_filter(current, radius))

    def _aggregate(
        self, image: torch.Tensor, bank: _PatchBank, gap: int, offset: int
    ) -> torch.Tensor:
        """Match every grid patch to its nearest style patch, then IRLS-aggregate them."""
        n = bank.patch_size
        _, height, width = image.shape
        pads = []
        for length in (width, height):
            before = offset
            covered = length + before - n
            after = (-covered) % gap
            pads += [before, after]
        mode = "reflect" if max(pads) < min(height, width) else "replicate"
        padded = F.pad(image.unsqueeze(0), pads, mode=mode)
        padded_size = padded.shape[-2:]
        patches = F.unfold(padded, n, stride=gap)[0].t()  # [M, 3*n*n]
        nearest = self._nearest(patches, bank)
        targets = bank.patches[nearest]  # [M, 3*n*n]
        exponent = (self.robust_r - 2) / 2
        for step in range(self.irls_steps):
            if step:
                patches = F.unfold(padded, n, stride=gap)[0].t()
            weights = ((patches - targets).pow(2).sum(1) + 1e-6).pow(exponent)  # [M]
            numerator = F.fold(
                (targets * weights[:, None]).t().unsqueeze(0), padded_size, n, stride=gap
            )
            ones = weights[:, None].expand(-1, n * n).t().unsqueeze(0)
            denominator = F.fold(ones, padded_size, n, stride=gap)
            padded = numerator / denominator.clamp_min(1e-12)
        top, left = pads[2], pads[0]
        return padded[0, :, top : top + height, left : left + width]

    @staticmethod
    def _nearest(patches: torch.Tensor, bank: _PatchBank) -> torch.Tensor:
        """Index of each patch's nearest style patch, in the bank's PCA subspace."""
        query = (patches - bank.mean) @ bank.basis  # [M, k]
        rows = max(1, _DISTANCE_BLOCK_ELEMENTS // max(1, bank.projected.shape[0]))
        best = []
        for start in range(0, query.shape[0], rows):
            block = query[start : start + rows]
            # ||q - s||^2 = ||q||^2 - 2 q.s + ||s||^2; ||q||^2 is constant per row
            scores = torch.addmm(bank.projected_sq_norm, block, bank.projected.t(), alpha=-2)
            best.append(scores.argmin(1))
        return torch.cat(best)
