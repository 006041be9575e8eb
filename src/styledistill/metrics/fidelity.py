"""Teacher fidelity: how closely the student reproduces the teacher (PSNR, SSIM).

The student is trained to copy the teacher, so on held-out pairs the plain image
distances between the two outputs say how well the distillation worked. LPIPS
(``metrics.lpips``) is added by the evaluation when its weights are present.
SSIM follows Wang et al. 2004 as implemented by scikit-image with
``gaussian_weights=True``: an 11x11 Gaussian window with sigma 1.5, K1=0.01,
K2=0.03, population covariances, averaged over the valid interior and over channels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["mean_finite", "psnr", "ssim"]

_SSIM_SIGMA = 1.5
_SSIM_RADIUS = 5  # scikit-image: int(truncate 3.5 * sigma 1.5 + 0.5)


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.ndim == 3:
        a, b = a.unsqueeze(0), b.unsqueeze(0)
    if a.ndim != 4:
        raise ValueError(f"expected [B,C,H,W] or [C,H,W], got {tuple(a.shape)}")
    return a.double(), b.double()


def psnr(a: torch.Tensor, b: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, ``[B]`` (inf for identical images)."""
    a, b = _check_pair(a, b)
    mse = (a - b).pow(2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(data_range**2 / mse)


def _gaussian_window(device: torch.device) -> torch.Tensor:
    offsets = torch.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=torch.float64, device=device)
    kernel = torch.exp(-0.5 * (offsets / _SSIM_SIGMA) ** 2)
    kernel = kernel / kernel.sum()
    return kernel


def ssim(a: torch.Tensor, b: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """Structural similarity per image, ``[B]``, for images at least 11 px per side."""
    a, b = _check_pair(a, b)
    size = 2 * _SSIM_RADIUS + 1
    if min(a.shape[-2:]) < size:
        raise ValueError(f"SSIM needs images of at least {size}x{size}, got {tuple(a.shape[-2:])}")
    channels = a.shape[1]
    kernel = _gaussian_window(a.device)
    horizontal = kernel.view(1, 1, 1, size).repeat(channels, 1, 1, 1)
    vertical = kernel.view(1, 1, size, 1).repeat(channels, 1, 1, 1)

    def blur(x: torch.Tensor) -> torch.Tensor:
        # "valid" filtering: exactly scikit-image's values on the interior it averages
        x = F.conv2d(x, horizontal, groups=channels)
        return F.conv2d(x, vertical, groups=channels)

    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    numerator = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    denominator = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    ssim_map = numerator / denominator
    return ssim_map.mean(dim=(2, 3)).mean(dim=1)


def mean_finite(values: torch.Tensor) -> float:
    """Mean over finite entries (PSNR of identical images is inf); nan if none."""
    finite = values[torch.isfinite(values)]
    return float(finite.mean()) if finite.numel() else math.nan
