"""CFSD, the content feature structural distance of StyleID (Chung et al. 2024).

How far the stylized image's self-similarity structure drifts from the content's:
VGG19 relu3_1 features ``F`` (``hw x c``, divided by ``c``) give the patch similarity
``softmax(F Fᵀ)`` row by row; CFSD is ``KL(content || stylized)`` summed over rows
(PyTorch's ``batchmean`` with one image per batch, as StyleID evaluates) and averaged
over pairs. At 512x512, ``hw = 16384`` and one similarity matrix is 1 GiB in float32,
so the KL is accumulated over row blocks and never materialised.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from .weights import WEIGHTS, load_torchvision_features, read_or_download

__all__ = ["VGG19Relu31", "cfsd_pair", "load_vgg19_relu31", "self_similarity_kl"]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
#: Indices of torchvision ``vgg19().features`` up to relu3_1 that hold weights.
_CONV_INDICES = (0, 2, 5, 7, 10)


class VGG19Relu31(nn.Module):
    """``torchvision.models.vgg19().features[:12]`` (conv1_1 .. relu3_1), same indices."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in (64, 64, "M", 128, 128, "M", 256):
            if width == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            layers += [nn.Conv2d(channels, int(width), kernel_size=3, padding=1), nn.ReLU()]
            channels = int(width)
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))
        self.eval()
        self.requires_grad_(False)

    def load_vgg19(self, state: dict[str, torch.Tensor], source: str = "state dict") -> None:
        """Take conv1_1..conv3_1 from a torchvision VGG19 state dict (``features.N.*``)."""
        wanted = {f"{i}.{p}" for i in _CONV_INDICES for p in ("weight", "bias")}
        load_torchvision_features(self.features, state, wanted, "VGG19", source)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """relu3_1 features ``[B, 256, H/4, W/4]`` of images in [0, 1]."""
        x = (images.to(self.mean.dtype) - self.mean) / self.std
        return self.features(x)


def load_vgg19_relu31(
    path: str | os.PathLike | None = None,
    *,
    download: bool = False,
    device: torch.device | str = "cpu",
) -> VGG19Relu31:
    """VGG19 up to relu3_1 from a torchvision weights file, or downloaded when allowed."""
    model = VGG19Relu31()
    refusal = "CFSD: no vgg19 weights file given and download=False"
    model.load_vgg19(
        *read_or_download(path, WEIGHTS["vgg19"].url, download=download, refusal=refusal)
    )
    return model.to(device).eval()


def self_similarity_kl(
    content_features: torch.Tensor,
    stylized_features: torch.Tensor,
    *,
    block_rows: int = 1024,
) -> torch.Tensor:
    """``sum_i KL(softmax(Fc Fcᵀ)_i || softmax(Fs Fsᵀ)_i)`` per image, ``[B]`` (float64).

    Features are ``[B, C, H, W]``; each is flattened to ``hw x c`` and divided by ``c``.
    Rows are processed ``block_rows`` at a time, so memory is ``O(block_rows * hw)``.
    """
    if content_features.shape != stylized_features.shape or content_features.ndim != 4:
        raise ValueError(
            f"feature maps must be [B,C,H,W] of equal shape, got "
            f"{tuple(content_features.shape)} and {tuple(stylized_features.shape)}"
        )
    batch, channels = content_features.shape[:2]
    fc = content_features.flatten(2).transpose(1, 2).float() / channels
    fs = stylized_features.flatten(2).transpose(1, 2).float() / channels
    positions = fc.shape[1]
    totals = torch.zeros(batch, dtype=torch.float64, device=fc.device)
    for start in range(0, positions, block_rows):
        stop = min(start + block_rows, positions)
        # float32 products (the O(hw² c) part), float64 softmax/KL: the per-row KLs are
        # small differences of logs of ~1/hw probabilities, which float32 would blur
        log_p = F.log_softmax(torch.bmm(fc[:, start:stop], fc.transpose(1, 2)).double(), dim=-1)
        log_q = F.log_softmax(torch.bmm(fs[:, start:stop], fs.transpose(1, 2)).double(), dim=-1)
        totals += (log_p.exp() * (log_p - log_q)).sum(dim=(1, 2))
        del log_p, log_q
    return totals


@torch.inference_mode()
def cfsd_pair(
    model: VGG19Relu31,
    content: torch.Tensor,
    stylized: torch.Tensor,
    *,
    block_rows: int = 1024,
) -> torch.Tensor:
    """CFSD of each pair in two ``[B,3,H,W]`` batches of equal size, ``[B]``."""
    if content.shape != stylized.shape:
        raise ValueError(
            f"CFSD compares images of equal size, got {tuple(content.shape)} and {tuple(stylized.shape)}"
        )
    device = model.mean.device
    return self_similarity_kl(
        model(content.to(device)), model(stylized.to(device)), block_rows=block_rows
    )
