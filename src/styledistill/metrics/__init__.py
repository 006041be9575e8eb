"""Evaluation metrics (docs/architecture.md, Evaluation protocol). Imports are lazy so light metrics stay light."""

from __future__ import annotations

from ..plumbing import lazy_attributes

__all__ = [
    "LPIPS",
    "WEIGHTS",
    "ArtInception",
    "VGG19Relu31",
    "WeightsResolver",
    "artfid_score",
    "cfsd_pair",
    "fid_from_features",
    "fid_infinity",
    "frechet_distance",
    "histogram_distance",
    "image_histogram_distance",
    "inception_features",
    "load_art_inception",
    "load_lpips",
    "load_vgg19_relu31",
    "psnr",
    "rgb_uv_histogram",
    "self_similarity_kl",
    "ssim",
]

_LAZY = {
    "ArtInception": ".artfid",
    "artfid_score": ".artfid",
    "inception_features": ".artfid",
    "load_art_inception": ".artfid",
    "fid_from_features": ".fid",
    "fid_infinity": ".fid",
    "frechet_distance": ".fid",
    "LPIPS": ".lpips",
    "load_lpips": ".lpips",
    "VGG19Relu31": ".cfsd",
    "cfsd_pair": ".cfsd",
    "load_vgg19_relu31": ".cfsd",
    "self_similarity_kl": ".cfsd",
    "psnr": ".fidelity",
    "ssim": ".fidelity",
    "WEIGHTS": ".weights",
    "WeightsResolver": ".weights",
    "histogram_distance": ".histogram",
    "image_histogram_distance": ".histogram",
    "rgb_uv_histogram": ".histogram",
}

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
