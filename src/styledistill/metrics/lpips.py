"""LPIPS v0.1 with the AlexNet trunk (Zhang et al. 2018), built on torchvision's AlexNet.

The distance the StyleID protocol reports between stylized and content images (and
that we also use for student-vs-teacher fidelity). Computation, as in the ``lpips``
package: inputs in [-1, 1] go through LPIPS's scaling layer, AlexNet's five ReLU
outputs are unit-normalized along channels, their squared difference is weighted by a
learned 1x1 convolution per layer, averaged over space and summed over layers.
Weights: torchvision's ImageNet AlexNet for the trunk and the package's
``weights/v0.1/alex.pth`` for the five linear heads.
"""

from __future__ import annotations

import os
import re

import torch
from torch import nn

from ..errors import CheckpointError
from .weights import WEIGHTS, load_torchvision_features, read_or_download

__all__ = ["ALEX_CHANNELS", "LPIPS", "load_lpips"]

#: Channels of AlexNet's relu1..relu5, the layers LPIPS compares.
ALEX_CHANNELS = (64, 192, 384, 256, 256)
#: Indices of relu1..relu5 inside ``torchvision.models.alexnet().features``.
_TAP_INDICES = (1, 4, 7, 9, 11)
_LIN_KEY = re.compile(r"^(?:lin|lins\.)(\d)\.(?:model\.\d+\.)?weight$")


class LPIPS(nn.Module):
    """``forward(x, y)`` -> per-image distance ``[B]`` for images in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import alexnet

        self.features = alexnet(weights=None).features[: _TAP_INDICES[-1] + 1]
        for module in self.features:
            if isinstance(module, nn.ReLU):
                module.inplace = False  # the tapped activations must survive the next layer
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in ALEX_CHANNELS)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.eval()
        self.requires_grad_(False)

    # ------------------------------------------------------------------ weights
    def load_trunk(self, state: dict[str, torch.Tensor], source: str = "state dict") -> None:
        """Load AlexNet conv weights from a torchvision state dict (``features.N.*``)."""
        wanted = {k for k in self.features.state_dict()}
        load_torchvision_features(self.features, state, wanted, "AlexNet", source)

    def load_heads(self, state: dict[str, torch.Tensor], source: str = "state dict") -> None:
        """Load the five 1x1 heads from the lpips package's ``alex.pth`` (``linK.model.1.weight``)."""
        heads: dict[int, torch.Tensor] = {}
        for key, value in state.items():
            match = _LIN_KEY.match(key)
            if match:
                heads[int(match.group(1))] = value
        if sorted(heads) != list(range(len(ALEX_CHANNELS))):
            raise CheckpointError(
                f"{source}: expected LPIPS heads lin0..lin4 (lin0.model.1.weight ...), "
                f"found {sorted(heads) or 'none'}"
            )
        for index, (lin, channels) in enumerate(zip(self.lins, ALEX_CHANNELS)):
            weight = heads[index]
            if tuple(weight.shape) != (1, channels, 1, 1):
                raise CheckpointError(
                    f"{source}: lin{index} has shape {tuple(weight.shape)}, "
                    f"expected (1, {channels}, 1, 1) (AlexNet v0.1 heads)"
                )
            lin.weight.data.copy_(weight)

    # ------------------------------------------------------------------ forward
    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in _TAP_INDICES:
                taps.append(x)
        return taps

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(
                f"LPIPS compares two [B,3,H,W] batches of equal shape, got "
                f"{tuple(x.shape)} and {tuple(y.shape)}"
            )
        dtype = self.shift.dtype
        scaled_x = ((x.to(dtype) * 2.0 - 1.0) - self.shift) / self.scale
        scaled_y = ((y.to(dtype) * 2.0 - 1.0) - self.shift) / self.scale
        total = torch.zeros(x.shape[0], dtype=dtype, device=x.device)
        for lin, fx, fy in zip(self.lins, self._taps(scaled_x), self._taps(scaled_y)):
            nx = fx / (fx.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            ny = fy / (fy.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((nx - ny).pow(2)).mean(dim=(1, 2, 3))
        return total


def load_lpips(
    alexnet_path: str | os.PathLike | None = None,
    heads_path: str | os.PathLike | None = None,
    *,
    download: bool = False,
    device: torch.device | str = "cpu",
) -> LPIPS:
    """LPIPS-Alex from two files (trunk, heads); a missing path is downloaded when allowed."""
    model = LPIPS()
    for key, path, loader in (
        ("alexnet", alexnet_path, model.load_trunk),
        ("lpips_alex", heads_path, model.load_heads),
    ):
        refusal = f"LPIPS: no {key} weights file given and download=False"
        loader(*read_or_download(path, WEIGHTS[key].url, download=download, refusal=refusal))
    return model.to(device).eval()
