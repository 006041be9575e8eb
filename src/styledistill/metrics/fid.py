"""Fréchet distance between feature sets (FID) and its extrapolated FID∞.

``frechet_distance`` is the classic formula on (mean, covariance) with the matrix square
root of pytorch-fid / ArtFID, kept for comparability. ``fid_from_features`` gives the
same number from raw features by a route that is exact for the StyleID protocol's case
of fewer samples than dimensions (800 images, 2048-d): there the covariances are low
rank, ``sqrtm`` of their product is numerically fragile and slow, whereas the trace of
``sqrt(Σ1 Σ2)`` equals the nuclear norm of the small cross-Gram matrix ``A1 A2ᵀ``.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

__all__ = [
    "feature_statistics",
    "fid_from_features",
    "fid_infinity",
    "frechet_distance",
    "trace_sqrt_product",
]


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (``np.cov`` convention) of ``[N, D]`` features."""
    features = _as_features(features, "features")
    if features.shape[0] < 2:
        raise ValueError(
            f"need at least 2 feature vectors for a covariance, got {features.shape[0]}"
        )
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """``|mu1 - mu2|² + tr(Σ1 + Σ2 - 2 sqrt(Σ1 Σ2))``, computed like pytorch-fid.

    A product that ``sqrtm`` cannot handle (non-finite result) is retried with ``eps``
    on the diagonals; a tiny imaginary part from rounding is dropped, a large one is an
    error (the inputs are then not covariance matrices).
    """
    mu1, mu2 = (
        np.atleast_1d(np.asarray(mu1, np.float64)),
        np.atleast_1d(np.asarray(mu2, np.float64)),
    )
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape:
        raise ValueError(f"mean vectors differ in length: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"covariances {sigma1.shape} and {sigma2.shape} do not match means of length {mu1.size}"
        )
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            worst = float(np.max(np.abs(covmean.imag)))
            raise ValueError(f"sqrtm(Σ1 Σ2) has an imaginary component of {worst:.3g}")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``tr sqrt(Σ1 Σ2)`` for symmetric PSD matrices via two symmetric eigendecompositions.

    ``Σ1 Σ2`` is similar to ``S Σ2 S`` with ``S = sqrt(Σ1)``, which is symmetric PSD, so
    its square root's trace is the sum of square roots of its eigenvalues.
    """
    values, vectors = np.linalg.eigh(np.asarray(sigma1, np.float64))
    root = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    inner = root @ np.asarray(sigma2, np.float64) @ root
    eig = np.linalg.eigvalsh((inner + inner.T) / 2.0)
    return float(np.sqrt(np.clip(eig, 0.0, None)).sum())


def fid_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """FID between two ``[N, D]`` feature sets (sample counts may differ).

    Uses the nuclear norm of the centred cross-Gram matrix when a set has no more
    samples than dimensions (exact, ``O(N² D)``), else :func:`trace_sqrt_product`.
    """
    a = _as_features(features1, "features1")
    b = _as_features(features2, "features2")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    n1, n2, dim = a.shape[0], b.shape[0], a.shape[1]
    if n1 < 2 or n2 < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {n1} and {n2}")
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    centred1 = (a - mu1) / np.sqrt(n1 - 1)
    centred2 = (b - mu2) / np.sqrt(n2 - 1)
    trace1 = float(np.sum(centred1 * centred1))
    trace2 = float(np.sum(centred2 * centred2))
    if min(n1, n2) <= dim:
        cross = centred1 @ centred2.T
        tr_covmean = float(np.linalg.svd(cross, compute_uv=False).sum())
    else:
        tr_covmean = trace_sqrt_product(centred1.T @ centred1, centred2.T @ centred2)
    diff = mu1 - mu2
    return float(diff @ diff + trace1 + trace2 - 2.0 * tr_covmean)


def fid_infinity(
    features1: np.ndarray,
    features2: np.ndarray,
    *,
    num_points: int = 15,
    min_samples: int | None = None,
    seed: int = 0,
) -> dict[str, object]:
    """FID∞ (Chong & Forsyth 2020): FID on random paired subsets of growing size N,
    a straight line fitted to FID against 1/N, and its value at 1/N = 0.

    The sets are subsampled with the same indices (pair ``i`` of one set belongs with
    row ``i`` of the other, as in ArtFID). ``min_samples`` defaults to a fifth of the
    pairs. Returns ``{"fid_infinity", "slope", "sizes", "fids"}``.
    """
    a = _as_features(features1, "features1")
    b = _as_features(features2, "features2")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"FID∞ pairs rows of both sets; got {a.shape[0]} and {b.shape[0]} rows")
    total = a.shape[0]
    if min_samples is None:
        min_samples = max(2, total // 5)
    if not 2 <= min_samples <= total:
        raise ValueError(f"min_samples={min_samples} must lie in [2, {total}]")
    sizes = np.unique(np.linspace(min_samples, total, num=max(2, num_points)).astype(np.int64))
    if sizes.size < 2:
        raise ValueError(f"FID∞ needs at least two distinct subset sizes; have {total} pairs")
    rng = np.random.default_rng(seed)
    fids = []
    for size in sizes:
        idx = rng.permutation(total)[:size]
        fids.append(fid_from_features(a[idx], b[idx]))
    slope, intercept = np.polyfit(1.0 / sizes.astype(np.float64), np.asarray(fids), deg=1)
    return {
        "fid_infinity": float(intercept),
        "slope": float(slope),
        "sizes": [int(s) for s in sizes],
        "fids": [float(f) for f in fids],
    }


def _as_features(features: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be [N, D], got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array
