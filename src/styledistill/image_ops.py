"""Small image operations on RGB images in [0,1], shared by the teachers and the student.

Torch only, and nothing from :mod:`styledistill.teachers` or :mod:`styledistill.student`,
so any layer can import it (one copy of each rule). :func:`luminance` and
:func:`scale_to_luminance` take any ``[..., 3, H, W]`` and export to ONNX; the filters
are the texture teacher's, for one image ``[C,H,W]``, and free to use ops that do not
export (reflect padding, ``torch.quantile``). :func:`histogram_matched` is the simplest
stylization there is and the baseline every benchmark measures against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "box_filter",
    "edge_mask",
    "histogram_matched",
    "luminance",
    "scale_to_luminance",
]

#: Rec. 601 luma weights of R, G, B.
_LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma ``[..., 1, H, W]`` of RGB ``[..., 3, H, W]`` (one image or a batch).

    Brightness alone is what content fusion and histogram matching change, so that
    the chroma (the style's palette) is left as the pasted patches had it.
    """
    if image.dim() != 4:  # e.g. patches' code grids [B,N,3,c,c]: small, any shape
        (red, green, blue), (w_red, w_green, w_blue) = image.split(1, dim=-3), _LUMA_WEIGHTS
        return w_red * red + w_green * green + w_blue * blue
    # an image batch: one [1,3] x [3, H*W] matmul, a single pass over the image in
    # onnxruntime (channel slices and a weighted sum are six); each size read on its own
    # so that the export keeps them dynamic
    batch, height, width = image.shape[0], image.shape[2], image.shape[3]
    weights = torch.tensor(_LUMA_WEIGHTS, dtype=image.dtype, device=image.device).view(1, 3)
    return (weights @ image.flatten(2)).view(batch, 1, height, width)


def scale_to_luminance(
    image: torch.Tensor, target: torch.Tensor, current: torch.Tensor | None = None
) -> torch.Tensor:
    """Scale each pixel's RGB so its luma becomes ``target [..., 1, H, W]``; chroma is kept.

    Scaling (not shifting) keeps the R:G:B ratios, so no colour the style lacks appears;
    the luma floor (1e-3) and the ratio cap (8) keep near-black pixels from blowing up.
    ``current``: the image's :func:`luminance`, when the caller has it already.
    """
    current = (luminance(image) if current is None else current).clamp_min(1e-3)
    return (image * (target / current).clamp(0.0, 8.0)).clamp(0.0, 1.0)


def box_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 window, reflect-padded; ``x`` is [C,H,W].

    Reflect padding keeps the output the input's size without darkening or
    brightening the borders (as zero padding would).
    """
    padded = F.pad(x.unsqueeze(0), (radius, radius, radius, radius), mode="reflect")
    return F.avg_pool2d(padded, 2 * radius + 1, stride=1)[0]


def edge_mask(content: torch.Tensor, floor: float) -> torch.Tensor:
    """Where the content must survive: blurred gradient magnitude, scaled to [floor, 1].

    Stands in for the paper's segmentation mask: strong on edges and textured objects,
    ``floor`` in flat regions (sky, walls) where the style texture may take over. The
    scale is the 90th percentile of the magnitude, so the mask does not depend on the
    content's overall contrast.
    """
    gray = luminance(content)
    padded = F.pad(gray.unsqueeze(0), (1, 1, 1, 1), mode="replicate")
    sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8
    kernels = torch.stack([sobel_x, sobel_x.t()]).unsqueeze(1)
    grad = F.conv2d(padded, kernels)[0]
    magnitude = grad.pow(2).sum(0, keepdim=True).sqrt()
    radius = max(1, content.shape[-1] // 64)
    magnitude = box_filter(magnitude, radius)
    scale = torch.quantile(magnitude.flatten(), 0.9).clamp_min(1e-4)
    mask = (magnitude / scale).clamp(0, 1)
    return floor + (1 - floor) * mask  # [1, H, W]


def histogram_matched(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """``content [3,H,W]`` with each RGB channel's histogram matched to ``style``'s
    (scikit-image's exact specification): the palette without the texture."""
    from skimage.exposure import match_histograms

    matched = match_histograms(
        content.permute(1, 2, 0).numpy(), style.permute(1, 2, 0).numpy(), channel_axis=-1
    )
    return torch.from_numpy(matched).permute(2, 0, 1).float().clamp(0.0, 1.0)
