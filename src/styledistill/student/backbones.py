"""The tokenizers' backbones: torchvision networks cut at a stride, with their weights.

Tokens come from a torchvision ResNet or MobileNet cut where its features reach the
wanted stride, followed by a 1x1 projection to the transformer's width. Frozen
BatchNorm (statistics and affine as buffers) keeps pretrained statistics under small
batches, as in DETR and the official STTR code.
"""

from __future__ import annotations

import itertools
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import CheckpointError
from ..weights_io import read_state_dict

__all__ = ["BACKBONES", "BackboneSpec", "Tokenizer", "build_backbone", "fold_frozen_batchnorm"]


@dataclass(frozen=True)
class BackboneSpec:
    """A torchvision backbone and where to cut it for each output stride.

    ``cuts[stride]`` is how many top-level blocks to keep (of ``blocks`` for ResNets,
    of ``features`` for MobileNetV3); ``channels[stride]`` is the width there. Blocks
    before ``frozen_until`` (the stride-4 stem) are frozen when ``freeze_backbone_stem``.
    """

    builder: str
    kind: str  # "resnet" or "mobilenet"
    channels: dict[int, int]
    cuts: dict[int, int]
    frozen_until: int
    weights: str  # torchvision weights enum for "imagenet"


_RESNET_CUTS = {2: 3, 4: 5, 8: 6, 16: 7, 32: 8}  # conv1, bn1, relu, maxpool, layer1..4
BACKBONES: dict[str, BackboneSpec] = {
    "resnet18": BackboneSpec(
        "resnet18",
        "resnet",
        {2: 64, 4: 64, 8: 128, 16: 256, 32: 512},
        _RESNET_CUTS,
        5,
        "ResNet18_Weights",
    ),
    "resnet34": BackboneSpec(
        "resnet34",
        "resnet",
        {2: 64, 4: 64, 8: 128, 16: 256, 32: 512},
        _RESNET_CUTS,
        5,
        "ResNet34_Weights",
    ),
    "resnet50": BackboneSpec(
        "resnet50",
        "resnet",
        {2: 64, 4: 256, 8: 512, 16: 1024, 32: 2048},
        _RESNET_CUTS,
        5,
        "ResNet50_Weights",
    ),
    "mobilenet_v3_large": BackboneSpec(
        "mobilenet_v3_large",
        "mobilenet",
        {2: 16, 4: 24, 8: 40, 16: 112, 32: 960},
        {2: 2, 4: 4, 8: 7, 16: 13, 32: 17},
        4,
        "MobileNet_V3_Large_Weights",
    ),
    "mobilenet_v2": BackboneSpec(
        "mobilenet_v2",
        "mobilenet",
        {2: 16, 4: 24, 8: 32, 16: 96, 32: 320},
        {2: 2, 4: 4, 8: 7, 16: 14, 32: 18},
        4,
        "MobileNet_V2_Weights",
    ),
}
_RESNET_BLOCKS = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


def build_backbone(
    name: str, stride: int, weights: str | os.PathLike | None, norm: str = "frozen"
) -> nn.Sequential:
    """A torchvision backbone cut at the given stride, BatchNorm frozen (or ``norm="batch"``).

    Frozen BatchNorm (statistics and affine as buffers, like DETR/STTR) keeps the
    pretrained statistics under small batches and is why the paper counts 45.6M
    parameters. ``weights``: None (random), "imagenet" (torchvision download) or a
    local state-dict file (.safetensors, or .pth/.pt read with weights_only=True).
    State-dict keys are torchvision's, so torchvision checkpoint files load as they are.
    """
    import torchvision
    from torchvision.ops.misc import FrozenBatchNorm2d

    spec = BACKBONES[name]
    builder = getattr(torchvision.models, spec.builder)
    eps = 1e-3 if spec.builder == "mobilenet_v3_large" else 1e-5  # as torchvision trained them
    norm_layer = FrozenBatchNorm2d if norm == "frozen" else nn.BatchNorm2d
    full = builder(norm_layer=partial(norm_layer, eps=eps))
    if weights == "imagenet":  # torchvision's file from torch's hub cache, hash-checked
        from ..pretrained import imagenet_state_dict

        full.load_state_dict(imagenet_state_dict(spec.builder))
    keep = spec.cuts[stride]
    if spec.kind == "resnet":
        body = nn.Sequential(OrderedDict((n, getattr(full, n)) for n in _RESNET_BLOCKS[:keep]))
    else:
        body = nn.Sequential(OrderedDict(features=full.features[:keep]))
    body.frozen_prefixes = (  # type: ignore[assignment]
        tuple(f"{n}." for n in _RESNET_BLOCKS[: spec.frozen_until])
        if spec.kind == "resnet"
        else tuple(f"features.{i}." for i in range(spec.frozen_until))
    )
    if weights not in (None, "imagenet"):
        body.load_state_dict(_read_backbone_file(Path(weights), body), strict=True)
    return body


def _read_backbone_file(path: Path, body: nn.Module) -> dict[str, Tensor]:
    state = read_state_dict(path, allow_pickle=True)
    wanted = body.state_dict()
    # Accept a full torchvision checkpoint (fc, later layers, num_batches_tracked are dropped).
    state = {k.removeprefix("module."): v for k, v in state.items()}
    picked = {k: v for k, v in state.items() if k in wanted}
    missing = [k for k in wanted if k not in picked]
    if missing:
        raise CheckpointError(
            f"{path}: not a matching torchvision ResNet state dict ({len(missing)} missing keys, "
            f"e.g. {missing[0]})"
        )
    for key, value in picked.items():
        if value.shape != wanted[key].shape:
            raise CheckpointError(
                f"{path}: {key} has shape {tuple(value.shape)}, expected {tuple(wanted[key].shape)}"
            )
    return picked


class Tokenizer(nn.Module):
    """Backbone + 1x1 projection to d_model; ``forward`` gives ``[B, d, h, w]``.

    ``features`` also returns the backbone's activations at the strides in ``taps``
    (for the decoder's skips), read on the way, at no extra cost.
    """

    def __init__(
        self,
        backbone: str,
        stride: int,
        dim: int,
        weights: str | os.PathLike | None,
        norm: str = "frozen",
    ) -> None:
        super().__init__()
        self.stride = stride
        self.cuts = BACKBONES[backbone].cuts
        self.backbone = build_backbone(backbone, stride, weights, norm)
        self.proj = nn.Conv2d(BACKBONES[backbone].channels[stride], dim, 1)

    def forward(self, image: Tensor) -> Tensor:
        return self.proj(self.backbone(image))

    def features(self, image: Tensor, taps: Sequence[int]) -> tuple[Tensor, list[Tensor]]:
        """Tokens ``[B, d, h, w]`` and the backbone activations at each stride in ``taps``."""
        if not taps:
            return self.forward(image), []
        blocks = self.backbone.features if hasattr(self.backbone, "features") else self.backbone
        ends = {self.cuts[stride] - 1: stride for stride in taps}
        found: dict[int, Tensor] = {}
        x = image
        for index, block in enumerate(blocks):
            x = block(x)
            if index in ends:
                found[ends[index]] = x
        return self.proj(x), [found[stride] for stride in taps]


def fold_frozen_batchnorm(module: nn.Module) -> None:
    """Fold, in place, each frozen BatchNorm into the convolution just before it (what
    onnxruntime does when it loads an export); the folded module no longer matches its
    config's state dict."""
    from torchvision.ops.misc import FrozenBatchNorm2d

    for parent in module.modules():
        names = list(parent._modules)
        for conv_name, norm_name in itertools.pairwise(names):
            conv, norm = parent._modules[conv_name], parent._modules[norm_name]
            if not (isinstance(conv, nn.Conv2d) and isinstance(norm, FrozenBatchNorm2d)):
                continue
            with torch.no_grad():
                scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
                bias = norm.bias - norm.running_mean * scale
                if conv.bias is not None:
                    bias = bias + conv.bias * scale
                conv.weight = nn.Parameter(conv.weight * scale.view(-1, 1, 1, 1))
                conv.bias = nn.Parameter(bias)
            parent._modules[norm_name] = nn.Identity()
