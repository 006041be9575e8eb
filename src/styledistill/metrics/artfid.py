"""ArtFID (Wright & Ommer 2022): FID on an art-finetuned Inception-v3, combined with LPIPS.

``ArtFID = (1 + LPIPS(stylized, content)) * (1 + FID(stylized, style))``.

The feature network is ArtFID's ``art_inception.pth``: torchvision's Inception-v3 trunk
finetuned on WikiArt, saved with two classification heads (``fc1``, ``fc2``) and two
auxiliary heads (``AuxLogits1``, ``AuxLogits2``) in place of torchvision's ``fc`` and
``AuxLogits``. Only the trunk matters for FID, so the heads are dropped on load and the
2048-d average-pooled features are used. As in ArtFID's evaluation code the network gets
images in ``[0, 1]`` with no mean/std normalization and no resize to 299 (ArtFID feeds
images whose short side is 512; the adaptive pooling makes any size >= 75 px work).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError
from .weights import read_or_download, state_dict_error

__all__ = [
    "ART_INCEPTION_URL",
    "MIN_INCEPTION_SIDE",
    "ArtInception",
    "artfid_score",
    "inception_features",
    "load_art_inception",
    "resize_short_side",
]

ART_INCEPTION_URL = (
    "https://huggingface.co/matthias-wright/art_inception/resolve/main/art_inception.pth"
)
#: Inception-v3's stride pattern needs at least this many pixels per side.
MIN_INCEPTION_SIDE = 75
_HEAD_PREFIXES = ("fc.", "fc1.", "fc2.", "AuxLogits.", "AuxLogits1.", "AuxLogits2.")


def artfid_score(fid: float, lpips: float) -> float:
    """``(1 + lpips) * (1 + fid)``: lower is better on both axes."""
    return (1.0 + float(lpips)) * (1.0 + float(fid))


class ArtInception(nn.Module):
    """Inception-v3 trunk returning 2048-d pooled features of ``[B,3,H,W]`` images in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import inception_v3

        net = inception_v3(
            weights=None, aux_logits=False, init_weights=False, transform_input=False
        )
        net.fc = nn.Identity()
        net.dropout = nn.Identity()
        self.net = net.eval()

    def trunk_state_dict_keys(self) -> list[str]:
        return [k for k in self.net.state_dict() if not k.startswith(_HEAD_PREFIXES)]

    def load_trunk(self, state: dict[str, torch.Tensor], source: str = "state dict") -> None:
        """Load the trunk from an ArtFID or torchvision Inception-v3 state dict (heads ignored)."""
        trunk = {k: v for k, v in state.items() if not k.startswith(_HEAD_PREFIXES)}
        expected = set(self.trunk_state_dict_keys())
        missing = sorted(expected - set(trunk))
        unexpected = sorted(set(trunk) - expected)
        if missing or unexpected:
            detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
            raise CheckpointError(
                f"{source}: not an Inception-v3 state dict ({len(missing)} missing, "
                f"{len(unexpected)} unexpected keys; {detail})"
            )
        try:
            self.net.load_state_dict(trunk, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{source}: Inception-v3 weights do not fit ({state_dict_error(exc)})"
            ) from None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [B, 3, H, W], got {tuple(images.shape)}")
        if min(images.shape[-2:]) < MIN_INCEPTION_SIDE:
            raise ValueError(
                f"Inception-v3 needs images of at least {MIN_INCEPTION_SIDE} px per side, "
                f"got {tuple(images.shape[-2:])}"
            )
        return self.net(images)


def load_art_inception(
    path: str | os.PathLike | None = None,
    *,
    download: bool = False,
    device: torch.device | str = "cpu",
) -> ArtInception:
    """The art-Inception from a file (``.pth`` or ``.safetensors``) or, when ``download``
    is true and no path is given, from ArtFID's Hugging Face URL (cached by torch hub)."""
    model = ArtInception()
    refusal = "art_inception: give a weights file path or download=True"
    model.load_trunk(*read_or_download(path, ART_INCEPTION_URL, download=download, refusal=refusal))
    return model.to(device).eval()


@torch.inference_mode()
def inception_features(
    model: ArtInception,
    images: Iterable[torch.Tensor] | torch.Tensor,
    *,
    batch_size: int = 16,
    resize: int | None = None,
) -> np.ndarray:
    """``[N, 2048]`` float64 features for images ``[3,H,W]`` (or a ``[N,3,H,W]`` batch).

    ``resize`` scales each image so its short side has that many pixels (ArtFID uses
    512) with antialiased bilinear filtering; None keeps the size.
    """
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    batch: list[torch.Tensor] = []
    out: list[np.ndarray] = []

    def flush() -> None:
        x = torch.stack(batch).to(device, dtype)
        out.append(model(x).double().cpu().numpy())
        batch.clear()

    for image in images:
        if resize is not None:
            image = resize_short_side(image, resize)
        if batch and batch[0].shape != image.shape:
            flush()
        batch.append(image)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    if not out:
        return np.zeros((0, 2048))
    return np.concatenate(out, axis=0)


def resize_short_side(image: torch.Tensor, size: int) -> torch.Tensor:
    """``[3,H,W]`` resized (antialiased bilinear) so its short side is ``size``, like
    torchvision's ``Resize(size)`` in ArtFID's evaluation; unchanged if already so."""
    height, width = image.shape[-2:]
    scale = size / min(height, width)
    new = (max(1, round(height * scale)), max(1, round(width * scale)))
    if new == (height, width):
        return image
    resized = F.interpolate(
        image.unsqueeze(0).float(), size=new, mode="bilinear", align_corners=False, antialias=True
    )
    return resized[0].clamp(0.0, 1.0)
