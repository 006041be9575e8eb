"""STTR, the student: a style-transfer transformer you can read in one sitting.

Wang et al., "Fine-Grained Image Style Transfer with Visual Transformers" (ACCV 2022),
as in the official demo configuration, written from scratch:

    content [B,3,H,W] --ResNet-50 to layer2 (stride 8)--> 1x1 conv --> content tokens
    style   [B,3,h,w] --ResNet-50 to layer4 (stride 32)-> 1x1 conv --> style tokens
    style tokens  --encoder (self-attention, 6 layers)--> style memory
    content tokens --decoder (self-attn, cross-attn to memory, FFN; 6 layers) + LayerNorm
                   --image decoder (1x1 conv, 3x [residual bottleneck, x2 upsample, 3x3 conv])
                   --> stylized image [B,3,H,W]

Attention is written with ``F.scaled_dot_product_attention`` (no ``nn.Transformer*`` fast
paths, which do not export to ONNX). Images enter in ``[0, 1]``; ImageNet normalization
happens inside. Inputs of any size are padded to a multiple of 32 with a mask, and the
output is cropped back to the content's size.

``encode_style`` and ``decode`` take and return plain tensors (already padded inputs,
boolean masks) so they can be exported to ONNX separately and the style encoded once
for many contents.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import CheckpointError, ConfigError
from ..image_ops import luminance, scale_to_luminance
from ..plumbing import atomic_path, weights_error_reason
from ..values import check_fields
from .patch_synthesis import (
    BANK_SHIFTS,
    DESCRIPTOR_CELLS,
    chroma_grid,
    code_size,
    edge_weight,
    fold_patches,
    fuse_luminance,
    paste_nearest_patches,
    patch_source,
    style_codes,
    triangular_window,
    unfold_patches,
)

__all__ = [
    "STTR",
    "STTRConfig",
    "count_parameters",
    "list_presets",
    "register_preset",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MODEL_CARD_NAME = "README.md"
#: Weight files in pickle format; loaded only with ``allow_pickle=True`` (and then weights_only).
PICKLE_WEIGHT_NAMES = ("pytorch_model.bin", "model.bin", "model.pt", "model.pth")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# --------------------------------------------------------------------------- config


@dataclass
class STTRConfig:
    """Everything needed to rebuild the architecture; saved as ``config.json``.

    Strides say where a tokenizer cuts its backbone: 4, 8, 16 or 32 (ResNet layer1..4,
    or the matching MobileNetV3 block).
    The image decoder upsamples ``log2(content_stride)`` times, with widths
    ``decoder_channels`` (default: the content tokenizer's channels halved each stage,
    as in the official code).
    """

    name: str = "custom"
    content_backbone: str = "resnet50"
    content_stride: int = 8
    style_backbone: str = "resnet50"
    style_stride: int = 32
    #: Long side the style is resized to before tokenizing (None: used as given).
    style_size: int | None = None
    d_model: int = 256
    num_heads: int = 8
    ffn_dim: int = 2048
    encoder_layers: int = 6
    decoder_layers: int = 6
    dropout: float = 0.1
    decoder_channels: list[int] | None = None
    #: How the image decoder's 3x3 convs see past the border: ``"reflect"`` (a reflection
    #: pad before each, as the official code) or ``"zeros"`` (the conv's own zero padding:
    #: in onnxruntime a separate pad op takes each tensor out of the convs' blocked layout
    #: and back, which ``"zeros"`` avoids).
    decoder_padding: str = "reflect"
    #: "sigmoid" (smooth, keeps gradients for pixels near 0/1) or "clamp".
    output_activation: str = "sigmoid"
    #: Feed the content image (full resolution) into the last conv, next to the
    #: decoder features. Off for the paper preset (exact STTR). The small preset uses it:
    #: its tokens are 16x coarser than the pixels, and distilled teachers keep the
    #: content's edges, which a cheap full-resolution path gives back for ~7 MMAC.
    content_skip: bool = False
    #: Kernel of that last conv with ``content_skip``: 3 (a 3x3 over the decoder features
    #: and the skip images, reflection-padded) or 1. Half the small preset's content path
    #: runs at full resolution and a 3x3 conv there with 4 outputs is its costliest op in
    #: onnxruntime (about 5 ms of ~55 at 384 px against 0.7 ms for a 1x1, measured); its
    #: inputs (the upsampled features, the synthesised and recoloured images) already
    #: carry their neighbourhoods.
    output_kernel: int = 3
    #: With ``content_skip``: also feed the content recoloured to the style's RGB mean/std
    #: (AdaIN on pixels; the style's statistics travel as one extra memory token that
    #: attention never sees), scaled/shifted per image from the pooled style memory.
    #: The student starts as that colour transfer and learns the rest.
    colour_film: bool = False
    #: With ``colour_film``: how the content is recoloured. ``"meanstd"``: AdaIN on pixels.
    #: ``"histogram"``: per-channel histogram specification to the style (what the
    #: texture teacher does after every pass); the style's quantiles travel as three more
    #: stat tokens (``d_model`` levels per channel), and the last conv adds a residual to
    #: that image in logit space, so the untrained student *is* the colour transfer.
    colour_transfer: str = "meanstd"
    #: Strides (below ``content_stride``) at which content-backbone features, AdaIN-matched
    #: to the style-backbone features at the same depth, enter the image decoder after each
    #: x2 upsampling (a U-Net skip that carries the style's local texture statistics; the
    #: style's mean/std there ride along as memory tokens attention never sees, as many as
    #: ``2 * channels / d_model`` rounded up). Needs the
    #: same backbone for content and style. Empty: the paper's decoder.
    decoder_skip_strides: list[int] = field(default_factory=list)
    #: Side of the style *pixel* patches a texture head pastes (0: off). Each content token
    #: attends (one head: learned query/key plus the distance between its cell's colour and
    #: the patch's) over the style tokens, and the attention mixes the style patches around
    #: those tokens; the patches overlap-add (triangular window) into a mosaic of the
    #: style's own texture, arranged like the content, that the last conv blends in. The
    #: patches ride along as memory tokens after the statistics. Needs ``content_skip`` and
    #: equal content and style strides; the side is the stride or twice it (half overlap).
    style_patches: int = 0
    #: How the texture head picks patches. ``"attention"``: the soft attention above (it
    #: averages patches, so its mosaic is blurred). ``"nearest"``: the texture teacher's
    #: finest pass done once (``patch_synthesis``): every half-overlapping
    #: ``style_patches`` patch of the recoloured content is replaced by its nearest style
    #: patch (bank: one patch every ``style_patches / 2`` px, on the grid of
    #: ``patch_synthesis.BANK_SHIFTS``, matched on colours pooled to a
    #: ``patch_descriptor_cells`` grid), brightness pulled back toward the content on its
    #: edges, brightness histogram matched to the style's. A learned gate (from the
    #: decoder's full-resolution features) says where the output follows it. Needs the
    #: histogram prior; the side must be a multiple of 8 whose half divides the strides.
    texture_head: str = "attention"
    patch_descriptor_cells: int = DESCRIPTOR_CELLS
    #: The match code's chroma grid (even, dividing ``patch_descriptor_cells``); None:
    #: half the brightness grid.
    patch_chroma_cells: int | None = None
    #: The nearest-patch head measures the content's edges on the content pooled by this
    #: (1: full resolution) and upsamples the weight (``patch_synthesis.edge_weight``).
    patch_edge_stride: int = 1
    #: Backbone BatchNorm: ``"frozen"`` (statistics and affine as buffers, like the
    #: official code; right for pretrained weights) or ``"batch"`` (trainable BatchNorm
    #: with batch statistics; the trainer picks it for backbones trained from random init,
    #: where frozen statistics go stale as the weights move and gradients overflow).
    backbone_norm: str = "frozen"
    #: Freeze the backbone stem and layer1 (conv1..layer1) like the official code.
    freeze_backbone_stem: bool = True
    #: Inputs are padded to a multiple of this (the style tokenizer's stride).
    pad_multiple: int = 32
    #: Free-form notes kept with the config; the model does not read them.
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> STTRConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k not in ("model_type", "styledistill_version")}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown STTR setting(s) {', '.join(unknown)}")
        check_fields(cls, data, source)
        config = cls(**data)
        config.validate(source)
        return config

    def validate(self, source: str = "STTRConfig") -> None:
        for role in ("content", "style"):
            backbone = getattr(self, f"{role}_backbone")
            stride = getattr(self, f"{role}_stride")
            if backbone not in BACKBONES:
                raise ConfigError(
                    f"{source}: {role}_backbone {backbone!r} is not one of {', '.join(BACKBONES)}"
                )
            if stride not in BACKBONES[backbone].channels:
                raise ConfigError(
                    f"{source}: {role}_stride {stride} not in {sorted(BACKBONES[backbone].channels)}"
                )
        if self.d_model <= 0 or self.num_heads <= 0 or self.d_model % self.num_heads:
            raise ConfigError(
                f"{source}: d_model {self.d_model} must be a positive multiple of num_heads {self.num_heads}"
            )
        if self.d_model % 4:
            raise ConfigError(
                f"{source}: d_model {self.d_model} must be a multiple of 4 (sine encoding)"
            )
        if self.encoder_layers < 0 or self.decoder_layers < 1 or self.ffn_dim < 1:
            raise ConfigError(
                f"{source}: need encoder_layers >= 0, decoder_layers >= 1, ffn_dim >= 1"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{source}: dropout {self.dropout} must be in [0, 1)")
        if self.output_activation not in ("sigmoid", "clamp"):
            raise ConfigError(f"{source}: output_activation must be 'sigmoid' or 'clamp'")
        if self.pad_multiple % max(self.content_stride, self.style_stride):
            raise ConfigError(
                f"{source}: pad_multiple {self.pad_multiple} must be a multiple of both strides"
            )
        if self.backbone_norm not in ("frozen", "batch"):
            raise ConfigError(f"{source}: backbone_norm must be 'frozen' or 'batch'")
        if self.decoder_padding not in ("reflect", "zeros"):
            raise ConfigError(f"{source}: decoder_padding must be 'reflect' or 'zeros'")
        if self.output_kernel not in (1, 3):
            raise ConfigError(f"{source}: output_kernel {self.output_kernel} must be 1 or 3")
        if self.colour_transfer not in ("meanstd", "histogram"):
            raise ConfigError(f"{source}: colour_transfer must be 'meanstd' or 'histogram'")
        if self.colour_film and (not self.content_skip or self.d_model < 6):
            raise ConfigError(f"{source}: colour_film needs content_skip and d_model >= 6")
        if self.decoder_skip_strides:
            if self.content_backbone != self.style_backbone:
                raise ConfigError(f"{source}: decoder_skip_strides need one backbone for both")
            channels = BACKBONES[self.content_backbone].channels
            for stride in self.decoder_skip_strides:
                if stride not in channels or not 1 < stride < self.content_stride:
                    raise ConfigError(
                        f"{source}: decoder skip stride {stride} must be a backbone stride "
                        f"below content_stride {self.content_stride}"
                    )
        if self.texture_head not in ("attention", "nearest"):
            raise ConfigError(f"{source}: texture_head must be 'attention' or 'nearest'")
        if self.style_patches and self.texture_head == "nearest":
            side, cells = self.style_patches, self.patch_descriptor_cells
            if not (self.colour_film and self.colour_transfer == "histogram"):
                raise ConfigError(
                    f"{source}: texture_head 'nearest' needs colour_film with colour_transfer 'histogram'"
                )
            if side % 8 or self.style_stride % (side // 2) or self.pad_multiple % (side // 2):
                raise ConfigError(
                    f"{source}: style_patches {side} must be a multiple of 8 whose half divides "
                    f"style_stride {self.style_stride} and pad_multiple {self.pad_multiple}"
                )
            if cells < 2 or cells % 2 or side % cells:
                raise ConfigError(
                    f"{source}: patch_descriptor_cells {cells} must be even and divide "
                    f"style_patches {side}"
                )
            chroma = chroma_grid(cells, self.patch_chroma_cells)
            if chroma < 2 or chroma % 2 or cells % chroma:
                raise ConfigError(
                    f"{source}: patch_chroma_cells {chroma} must be even and divide "
                    f"patch_descriptor_cells {cells}"
                )
            if self.patch_edge_stride not in (1, 2, 4):
                raise ConfigError(
                    f"{source}: patch_edge_stride {self.patch_edge_stride} must be 1, 2 or 4"
                )
        elif self.style_patches:
            if not self.content_skip or self.content_stride != self.style_stride:
                raise ConfigError(
                    f"{source}: style_patches needs content_skip and content_stride == style_stride"
                )
            if self.style_patches not in (self.style_stride, 2 * self.style_stride):
                raise ConfigError(
                    f"{source}: style_patches {self.style_patches} must be style_stride or twice it"
                )
        if self.style_size is not None and self.style_size < self.style_stride:
            raise ConfigError(f"{source}: style_size {self.style_size} is below the style stride")
        stages = self.upsample_stages
        if self.decoder_channels is not None and (
            len(self.decoder_channels) != stages or min(self.decoder_channels) < 2
        ):
            raise ConfigError(
                f"{source}: decoder_channels needs {stages} widths >= 2 (one per x2 upsampling)"
            )

    @property
    def upsample_stages(self) -> int:
        return int(math.log2(self.content_stride))

    def image_decoder_channels(self) -> list[int]:
        if self.decoder_channels is not None:
            return list(self.decoder_channels)
        width = BACKBONES[self.content_backbone].channels[self.content_stride]
        return [max(2, width // 2**i) for i in range(self.upsample_stages)]


# --------------------------------------------------------------------------- presets

_PRESETS: dict[str, Callable[[], STTRConfig]] = {}


def register_preset(name: str) -> Callable[[Callable[[], STTRConfig]], Callable[[], STTRConfig]]:
    """Register a named configuration (timm style): ``STTR.from_preset(name)``."""

    def wrap(fn: Callable[[], STTRConfig]) -> Callable[[], STTRConfig]:
        _PRESETS[name] = fn
        return fn

    return wrap


def preset_config(name: str, **overrides: Any) -> STTRConfig:
    """A preset's STTRConfig with setting overrides (checked: names, types), unbuilt."""
    if name not in _PRESETS:
        raise ConfigError(f"unknown STTR preset {name!r}; choose from {', '.join(list_presets())}")
    known = {f.name for f in dataclasses.fields(STTRConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"preset {name}: unknown STTR setting(s) {', '.join(unknown)}")
    check_fields(STTRConfig, overrides, f"preset {name}")
    return dataclasses.replace(_PRESETS[name](), **overrides)


def list_presets() -> list[str]:
    return sorted(_PRESETS)


@register_preset("sttr-paper")
def _sttr_paper() -> STTRConfig:
    """The official demo configuration: 45.6M parameters."""
    return STTRConfig(name="sttr-paper")


@register_preset("sttr-small")
def _sttr_small() -> STTRConfig:
    """Real time on a 2-core CPU, and able to draw the teacher's texture.

    Same structure, lighter parts: MobileNetV2 tokenizers (torchvision; ImageNet weights
    ship offline, see ``scripts/setup.sh``), content and style tokens at stride 16 (the
    style resized to 256 px: 256 style tokens, fine enough to hold its brush marks),
    d=128 with 4 heads, FFN 256, 2 encoder + 1 decoder layer, a slim image decoder
    (64..8 channels, zero-padded convs) that receives AdaIN-matched content features at
    stride 8 (``decoder_skip_strides``) and the content image at full resolution
    (``content_skip``, through a 1x1 last conv), no dropout, and the output predicted as
    a change to the content histogram-matched to the style (``colour_film`` with
    ``colour_transfer="histogram"``), with the teacher's texture drawn by a nearest-patch
    head (16 px style patches matched on brightness at 8 x 8 and chroma at 2 x 2, edges
    measured at half resolution; see ``patch_synthesis``) that a learned gate blends in:
    on held-out teacher pairs a soft attention head over 32 px patches blurred the
    texture away. Each of the lighter choices (one decoder layer, FFN 256, no stride-4
    skip, zero padding, the coarser chroma and edge map) scored the same on held-out
    teacher pairs and bought part of the speed of the content path (bench/RESULTS.md).
    """
    return STTRConfig(
        name="sttr-small",
        content_backbone="mobilenet_v2",
        content_stride=16,
        style_backbone="mobilenet_v2",
        style_stride=16,
        style_size=256,
        d_model=128,
        num_heads=4,
        ffn_dim=256,
        encoder_layers=2,
        decoder_layers=1,
        decoder_channels=[64, 32, 16, 8],
        decoder_padding="zeros",
        dropout=0.0,  # 0.1 stalls a model this small (measured: loss flat for 100+ steps)
        content_skip=True,
        output_kernel=1,
        colour_film=True,
        colour_transfer="histogram",
        decoder_skip_strides=[8],
        style_patches=16,
        texture_head="nearest",
        patch_chroma_cells=2,
        patch_edge_stride=2,
        pad_multiple=32,
    )


# --------------------------------------------------------------------------- backbones


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


def read_state_dict(path: Path, *, allow_pickle: bool = False) -> dict[str, Tensor]:
    """Tensors from a .safetensors file, or from a pickle with ``weights_only=True``."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return _finite(path, load_file(str(path)))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CheckpointError(
                f"{path}: corrupt or unreadable safetensors file ({reason})"
            ) from None
    if not allow_pickle:
        raise CheckpointError(
            f"{path}: refusing to load a pickle file; convert it to .safetensors "
            "or pass allow_pickle=True (then loaded with weights_only=True)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors come in many types
        raise CheckpointError(
            f"{path}: cannot read weights ({weights_error_reason(exc)})"
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    return _finite(path, state)


def _finite(path: Path, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """``state``, unless a floating-point tensor holds NaN or infinity (then one line)."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"{path}: tensor {key} holds NaN or infinite values; the weights are damaged "
                "(a diverged training run or a corrupt copy)"
            )
    return state


# --------------------------------------------------------------------------- building blocks


def sine_position_encoding(mask: Tensor, dim: int, temperature: float = 10000.0) -> Tensor:
    """DETR's 2D sine encoding ``[B, dim, h, w]`` from a padding mask ``[B, h, w]``.

    Positions are counted over the unpadded area and normalized to [0, 2pi], so a
    padded image gets the same encoding as the unpadded one. Only cumsum/arith ops:
    traceable for ONNX with dynamic sizes.
    """
    not_mask = (~mask).to(torch.float32)
    y = not_mask.cumsum(1)
    x = not_mask.cumsum(2)
    eps = 1e-6
    y = y / (y[:, -1:, :] + eps) * (2 * math.pi)
    x = x / (x[:, :, -1:] + eps) * (2 * math.pi)
    half = dim // 2
    steps = torch.arange(half, dtype=torch.float32, device=mask.device)
    freqs = temperature ** (2 * torch.div(steps, 2, rounding_mode="floor") / half)
    pos_x = x[..., None] / freqs
    pos_y = y[..., None] / freqs
    pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


class Attention(nn.Module):
    """Multi-head attention over batch-first tokens with a key padding mask."""

    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(
        self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None
    ) -> Tensor:
        dim = query.shape[-1]
        heads = self.num_heads
        q = self.q_proj(query).unflatten(-1, (heads, dim // heads)).transpose(1, 2)
        k = self.k_proj(key).unflatten(-1, (heads, dim // heads)).transpose(1, 2)
        v = self.v_proj(value).unflatten(-1, (heads, dim // heads)).transpose(1, 2)
        # An additive bias [B,1,1,L] (-inf on padding keys), not SDPA's boolean mask: the
        # exported boolean mask becomes a Where over every [heads, queries, keys] score,
        # about 5 ms of the 384 px content path in onnxruntime (measured); the bias is an Add.
        attn_mask = None
        if key_padding_mask is not None:
            bias = torch.zeros(key_padding_mask.shape, dtype=q.dtype, device=q.device)
            attn_mask = bias.masked_fill(key_padding_mask, float("-inf"))[:, None, None, :]
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            # SDPA's default, given as a number: exported, the default is recomputed from
            # the query's shape (seven ops per attention layer)
            scale=(dim // heads) ** -0.5,
        )
        return self.out_proj(out.transpose(1, 2).flatten(2))


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__(
            nn.Linear(dim, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
        )


class EncoderLayer(nn.Module):
    """Post-norm self-attention over style tokens; position added to queries and keys."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = Attention(dim, heads, dropout)
        self.ffn = FeedForward(dim, ffn, dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.drop1 = nn.Dropout(dropout)
        self.drop2 = nn.Dropout(dropout)

    def forward(self, x: Tensor, pos: Tensor, mask: Tensor | None) -> Tensor:
        qk = x + pos
        x = self.norm1(x + self.drop1(self.self_attn(qk, qk, x, mask)))
        return self.norm2(x + self.drop2(self.ffn(x)))


class DecoderLayer(nn.Module):
    """Post-norm: self-attention over content, cross-attention to style memory, FFN."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = Attention(dim, heads, dropout)
        self.cross_attn = Attention(dim, heads, dropout)
        self.ffn = FeedForward(dim, ffn, dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.drop1 = nn.Dropout(dropout)
        self.drop2 = nn.Dropout(dropout)
        self.drop3 = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        pos: Tensor,
        mask: Tensor | None,
        memory: Tensor,
        memory_pos: Tensor,
        memory_mask: Tensor | None,
    ) -> Tensor:
        qk = x + pos
        x = self.norm1(x + self.drop1(self.self_attn(qk, qk, x, mask)))
        x = self.norm2(
            x + self.drop2(self.cross_attn(x + pos, memory + memory_pos, memory, memory_mask))
        )
        return self.norm3(x + self.drop3(self.ffn(x)))


class ResidualBottleneck(nn.Module):
    """Pre-activation bottleneck (BN, LeakyReLU, conv) x3 with inner width outer/2."""

    def __init__(self, outer: int, inner: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.BatchNorm2d(outer),
            nn.LeakyReLU(),
            nn.Conv2d(outer, inner, 1),
            nn.BatchNorm2d(inner),
            nn.LeakyReLU(),
            nn.Conv2d(inner, inner, 3, padding=1),
            nn.BatchNorm2d(inner),
            nn.LeakyReLU(),
            nn.Conv2d(inner, outer, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


def image_decoder(channels: list[int], padding: str = "reflect") -> nn.Sequential:
    """[bottleneck, bilinear x2, pad, 3x3 conv] per stage; the last conv gives RGB.

    ``padding``: ``"reflect"`` (a reflection pad layer) or ``"zeros"`` (the pad layer is
    an identity and each conv pads with zeros); four layers per stage either way."""
    layers: list[nn.Module] = []
    for i, width in enumerate(channels):
        out = channels[i + 1] if i + 1 < len(channels) else 3
        layers += [
            ResidualBottleneck(width, max(1, width // 2)),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            *_padded_conv(width, out, 3, padding),
        ]
    return nn.Sequential(*layers)


def _padded_conv(
    in_channels: int, out_channels: int, kernel: int, padding: str
) -> tuple[nn.Module, nn.Conv2d]:
    """(pad layer, conv) keeping the size for an odd ``kernel``: a reflection pad and an
    unpadded conv, or an identity and a zero-padded conv."""
    margin = kernel // 2
    if padding == "reflect" and margin:
        return nn.ReflectionPad2d(margin), nn.Conv2d(in_channels, out_channels, kernel)
    return nn.Identity(), nn.Conv2d(in_channels, out_channels, kernel, padding=margin)


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


# --------------------------------------------------------------------------- colour transfer

#: Histogram bins per channel for the colour statistics (8-bit images: one value per bin).
HISTOGRAM_BINS = 256


def _bin_index(images: Tensor, bins: int = HISTOGRAM_BINS) -> Tensor:
    """Each pixel's histogram bin per channel: ``[B,C,H,W]`` in [0,1] -> ``[B,C,H*W]`` int64."""
    # clamped below the last bin's top, the cast's truncation is the floor: one pass less
    return (images.float() * bins).clamp(0.0, bins - 1e-3).long().flatten(2)


def _channel_cdf(
    images: Tensor, mask: Tensor | None, bins: int = HISTOGRAM_BINS, index: Tensor | None = None
) -> Tensor:
    """Per-channel CDF at the bin edges ``0, 1/bins, ..., 1`` over unpadded pixels.

    ``[B,C,H,W]`` in [0,1] -> ``[B,C,bins+1]``. Built from a scatter-add histogram (no sort,
    so it exports to ONNX and costs one pass over the pixels).
    """
    batch, channels = images.shape[:2]
    index = _bin_index(images, bins) if index is None else index
    if mask is None:
        weights = torch.ones(index.shape, device=images.device)
    else:
        weights = (~mask).flatten(1).unsqueeze(1).float().expand(index.shape)
    counts = torch.zeros(batch, channels, bins, device=images.device).scatter_add(2, index, weights)
    cdf = counts.cumsum(2) / counts.sum(2, keepdim=True).clamp_min(1.0)
    return F.pad(cdf, (1, 0))


def _interpolate(table: Tensor, position: Tensor) -> Tensor:
    """Piecewise-linear lookup: ``table [B,C,K]`` sampled at ``position [B,C,N]`` in [0, K-1]."""
    last = table.shape[-1] - 1
    left = position.floor().clamp(0, last - 1)
    frac = (position - left).clamp(0.0, 1.0)
    left = left.long()
    low = torch.gather(table, 2, left)
    high = torch.gather(table, 2, left + 1)
    return low + frac * (high - low)


def channel_quantiles(images: Tensor, mask: Tensor | None, levels: int) -> Tensor:
    """Per-channel quantiles at ``levels`` evenly spaced probabilities 0..1 -> ``[B,C,levels]``.

    The inverse of the piecewise-linear CDF of :func:`_channel_cdf`, computed by summing
    how much of each bin lies below each probability (elementwise, ONNX-friendly).
    """
    cdf = _channel_cdf(images, mask)  # [B,C,bins+1]
    bins = cdf.shape[-1] - 1
    probability = torch.linspace(0.0, 1.0, levels, device=cdf.device).view(1, 1, levels, 1)
    low, width = cdf[..., :-1].unsqueeze(2), (cdf[..., 1:] - cdf[..., :-1]).unsqueeze(2)
    covered = ((probability - low) / width.clamp_min(1e-12)).clamp(0.0, 1.0)
    return covered.sum(-1) / bins


def match_channel_quantiles(
    content: Tensor, content_mask: Tensor | None, style_quantiles: Tensor
) -> Tensor:
    """Histogram specification per channel: each content pixel -> its CDF -> style quantile.

    ``style_quantiles [B,C,L]`` from :func:`channel_quantiles`; works on padded content
    (``content_mask`` True on padding, which is left out of the content's histogram).
    """
    table, index = quantile_lookup(content, content_mask, style_quantiles)
    return look_up(table, index, content)


def quantile_lookup(
    content: Tensor, content_mask: Tensor | None, style_quantiles: Tensor
) -> tuple[Tensor, Tensor]:
    """:func:`match_channel_quantiles` as a table and where to read it: the matched value of
    each histogram bin ``[B,C,bins]`` and each pixel's bin ``[B,C,H*W]``. A per-channel
    function of the matched colours can then be applied to the table's 256 entries once,
    not to every pixel (:func:`look_up`)."""
    index = _bin_index(content)
    cdf = _channel_cdf(content, content_mask, index=index)
    # the middle of each bin's mass: a spike of equal values (black sky, white paper)
    # maps to the middle of the style quantiles it spans, not to one end
    middle = 0.5 * (cdf[..., :-1] + cdf[..., 1:])
    quantiles = style_quantiles.float()
    return _interpolate(quantiles, middle * (quantiles.shape[-1] - 1)), index


def look_up(table: Tensor, index: Tensor, like: Tensor) -> Tensor:
    """Each pixel's entry of ``table [B,C,bins]`` (:func:`quantile_lookup`), shaped and
    typed ``like [B,C,H,W]``: one gather."""
    return torch.gather(table, 2, index).view(like.shape).to(like.dtype)


def _logit(images: Tensor, eps: float = 1e-3) -> Tensor:
    """``torch.logit(images, eps)``, written as clamp, divide, log: torch's ONNX export of
    ``logit`` adds a compare-and-select pair per bound over every pixel after the clamp,
    about 1 ms per call on a 384 px image in onnxruntime."""
    if images.dtype in (torch.float16, torch.bfloat16):  # 1 - eps rounds to 1: log(x / 0)
        return _logit(images.float(), eps).to(images.dtype)
    clamped = images.clamp(eps, 1.0 - eps)
    return torch.log(clamped / (1.0 - clamped))


# --------------------------------------------------------------------------- the model


class STTR(nn.Module):
    """The STTR student. See the module docstring for the data flow."""

    def __init__(
        self,
        config: STTRConfig,
        *,
        backbone_weights: str | os.PathLike | dict[str, str | os.PathLike | None] | None = None,
    ) -> None:
        super().__init__()
        config.validate()
        self.config = config
        if isinstance(backbone_weights, dict):
            content_weights = backbone_weights.get("content")
            style_weights = backbone_weights.get("style")
        else:
            content_weights = style_weights = backbone_weights
        dim = config.d_model
        self.content_tokenizer = Tokenizer(
            config.content_backbone,
            config.content_stride,
            dim,
            content_weights,
            config.backbone_norm,
        )
        self.style_tokenizer = Tokenizer(
            config.style_backbone, config.style_stride, dim, style_weights, config.backbone_norm
        )
        args = (dim, config.num_heads, config.ffn_dim, config.dropout)
        self.encoder = nn.ModuleList([EncoderLayer(*args) for _ in range(config.encoder_layers)])
        self.decoder = nn.ModuleList([DecoderLayer(*args) for _ in range(config.decoder_layers)])
        self.decoder_norm = nn.LayerNorm(dim)
        channels = config.image_decoder_channels()
        self.output_proj = nn.Conv2d(dim, channels[0], 1)
        padding = config.decoder_padding
        self.image_decoder = image_decoder(channels, padding)
        backbone_channels = BACKBONES[config.content_backbone].channels
        for stride in config.decoder_skip_strides:  # widen the conv right after that upsampling
            index = 4 * self._skip_stage(stride) + 3
            conv = self.image_decoder[index]
            self.image_decoder[index] = _padded_conv(
                conv.in_channels + backbone_channels[stride], conv.out_channels, 3, padding
            )[1]
        if config.content_skip:
            last = self.image_decoder[-1]
            extra = (6 if config.colour_film else 3) + (3 if config.style_patches else 0)
            # + for the nearest-patch head, a 4th output: the gate (logit) that decides where
            # the output follows the synthesised texture
            kernel = config.output_kernel
            pad, widened = _padded_conv(
                last.in_channels + extra, 4 if self._nearest_head else 3, kernel, padding
            )
            self.image_decoder[-2] = pad  # an identity for a 1x1: no border to pad
            centre = kernel // 2
            with torch.no_grad():  # start close to the skip image itself: learn the change
                widened.weight.zero_()
                widened.bias.zero_()
                if self._nearest_head:  # start as the synthesis pass, followed almost everywhere
                    widened.bias[3] = 3.0
                else:
                    taps = last.weight[..., 1 - centre : 2 + centre, 1 - centre : 2 + centre]
                    widened.weight[:, : last.in_channels].copy_(taps * 0.1)
                if not self._residual_output:  # else the output is already the recoloured image
                    start = last.in_channels + (6 if config.colour_film else 3) - 3
                    for channel in range(3):  # the recoloured content, or the content
                        widened.weight[channel, start + channel, centre, centre] = 4.0
                if config.style_patches and config.texture_head == "attention":
                    for channel in range(3):  # start half way to the mosaic (logit space)
                        widened.weight[
                            channel, last.in_channels + extra - 3 + channel, centre, centre
                        ] = 0.5
            self.image_decoder[-1] = widened
        if config.style_patches and not self._nearest_head:
            self.patch_query = nn.Linear(dim, dim)
            self.patch_key = nn.Linear(dim, dim)
            # how strongly a cell's colour picks patches of that colour (learned, log scale)
            self.patch_colour_scale = nn.Parameter(torch.tensor(math.log(200.0)))
        if config.colour_film:
            self.colour_head = nn.Linear(dim, 6)
            nn.init.zeros_(self.colour_head.weight)
            nn.init.zeros_(self.colour_head.bias)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        for layer in [*self.encoder, *self.decoder]:  # as the official Transformer
            for p in layer.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
        if config.freeze_backbone_stem:
            for tokenizer in (self.content_tokenizer, self.style_tokenizer):
                for name, p in tokenizer.backbone.named_parameters():
                    if name.startswith(tokenizer.backbone.frozen_prefixes):
                        p.requires_grad_(False)

    # ---- construction

    @classmethod
    def from_preset(
        cls,
        name: str,
        *,
        backbone_weights: str | os.PathLike | dict[str, Any] | None = None,
        **overrides: Any,
    ) -> STTR:
        """A preset ("sttr-paper", "sttr-small") with optional setting overrides."""
        return cls(preset_config(name, **overrides), backbone_weights=backbone_weights)

    @property
    def _residual_output(self) -> bool:
        """Histogram recolouring: the last conv predicts a change to the recoloured image."""
        return self.config.colour_film and self.config.colour_transfer == "histogram"

    @property
    def _pointwise_output(self) -> bool:
        """The last conv over [features, skip images] is 1x1 (``output_kernel=1``)."""
        return bool(self.config.content_skip) and self.config.output_kernel == 1

    @property
    def _nearest_head(self) -> bool:
        return bool(self.config.style_patches) and self.config.texture_head == "nearest"

    @property
    def num_colour_tokens(self) -> int:
        """Memory tokens after the style tokens that carry colour statistics (mean/std,
        then per-channel quantiles, then brightness quantiles for the nearest-patch head)."""
        if not self.config.colour_film:
            return 0
        if self.config.colour_transfer != "histogram":
            return 1
        return 5 if self._nearest_head else 4

    @property
    def patches_per_style_token(self) -> int:
        """Style pixel patches carried per style token: one for the attention head; the
        nearest-patch bank holds one per ``style_patches / 2`` px cell on each of its
        grids (:data:`BANK_SHIFTS`)."""
        if not self._nearest_head:
            return 1
        cells = (self.config.style_stride // (self.config.style_patches // 2)) ** 2
        return len(BANK_SHIFTS) * cells

    @property
    def _bank_values(self) -> int:
        """Numbers the texture head stores per style token: for the attention head one
        pixel patch; for the nearest-patch head the token's pixels once per bank grid
        (chosen patches are read from them) and its bank patches' match codes with their
        norms."""
        side, stride = self.config.style_patches, self.config.style_stride
        if not self._nearest_head:
            return 3 * side * side
        pixels = 3 * stride * stride * len(BANK_SHIFTS)
        return pixels + self.patches_per_style_token * self._code_values

    @property
    def _code_values(self) -> int:
        """Numbers the nearest-patch head keeps per bank patch: its match code, its norm."""
        config = self.config
        return code_size(config.patch_descriptor_cells, config.patch_chroma_cells) + 1

    @property
    def tokens_per_patch(self) -> int:
        """Memory tokens the texture head adds per style token (0 without it)."""
        if not self.config.style_patches:
            return 0
        return -(-self._bank_values // self.config.d_model)

    def _style_patches(self, style: Tensor) -> Tensor:
        """Padded style ``[B,3,H,W]`` -> one pixel patch per style token ``[B, L, 3*k*k]``."""
        return unfold_patches(style, self.config.style_patches, self.config.style_stride)

    def _paste_patches(
        self,
        tokens: Tensor,
        base: Tensor,
        memory: Tensor,
        memory_mask: Tensor | None,
        patches: Tensor,
    ) -> Tensor:
        """The texture head: a mosaic of style patches arranged like the content.

        ``tokens [B,N,d]`` (content, after the transformer), ``base [B,3,H,W]`` (the image the
        output starts from), ``memory [B,L,d]`` style tokens, ``patches [B,L,3*k*k]``.
        """
        side, stride = self.config.style_patches, self.config.style_stride
        margin = (side - stride) // 2
        height, width = base.shape[-2:]
        query, key = self.patch_query(tokens), self.patch_key(memory)
        logits = query @ key.transpose(1, 2) / math.sqrt(query.shape[-1])
        cell_colour = F.avg_pool2d(base, stride).flatten(2).transpose(1, 2)  # [B,N,3]
        centre = patches.unflatten(2, (3, side, side))[
            ..., margin : margin + stride, margin : margin + stride
        ]
        patch_colour = centre.mean(dim=(-1, -2))  # [B,L,3]
        distance = (cell_colour.unsqueeze(2) - patch_colour.unsqueeze(1)).pow(2).sum(-1)
        logits = logits - self.patch_colour_scale.exp() * distance
        if memory_mask is not None:
            logits = logits.masked_fill(memory_mask[:, None, :], -1e4)
        mixed = logits.softmax(dim=-1) @ patches  # [B,N,3*k*k]
        window = triangular_window(side, base)  # overlaps sum to 1
        rows, cols = height // stride, width // stride
        summed = fold_patches(mixed * window.repeat(3), rows, cols, side, stride)
        weight = fold_patches(window.expand(1, rows * cols, -1), rows, cols, side, stride)
        return (summed / weight.clamp_min(1e-6)).clamp(0.0, 1.0)

    def _synthesise(
        self,
        content: Tensor,
        content_mask: Tensor | None,
        base: Tensor,
        segments: Tensor,
        codes: Tensor,
        colour_stats: Tensor,
    ) -> Tensor:
        """The nearest-patch head: style patches pasted over ``base`` (the content
        histogram-matched to the style), brightness fused with the content's on its edges,
        then matched to the style's brightness histogram. All in [0, 1], ``[B,3,H,W]``.
        ``colour_stats``: the colour tokens (the bank's grid rides in the first)."""
        config = self.config
        grid, luminance_quantiles = colour_stats[:, 0, 6:8], colour_stats[:, 4:5]
        mosaic = paste_nearest_patches(
            base,
            segments,
            grid,
            codes,
            config.style_patches,
            config.patch_descriptor_cells,
            config.patch_chroma_cells,
        )
        edges = edge_weight(content, stride=config.patch_edge_stride)
        fused = fuse_luminance(mosaic, luminance(base), edges)
        brightness = luminance(fused)
        target = match_channel_quantiles(
            brightness, content_mask, luminance_quantiles.expand(base.shape[0], -1, -1)
        )
        return scale_to_luminance(fused, target, brightness)

    def _skip_token_counts(self) -> list[int]:
        """Memory tokens holding the style's mean/std at each decoder skip stride."""
        channels = BACKBONES[self.config.style_backbone].channels
        dim = self.config.d_model
        return [-(-2 * channels[s] // dim) for s in self.config.decoder_skip_strides]

    @property
    def num_stat_tokens(self) -> int:
        """Memory tokens after the style tokens that carry statistics, not features:
        colour first, then the mean/std tokens of each decoder skip stride."""
        return self.num_colour_tokens + sum(self._skip_token_counts())

    def _split_memory(
        self, memory: Tensor, memory_pos: Tensor, memory_mask: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor, Tensor | None, Tensor | None]:
        """Memory -> (style tokens, their positions, their mask, statistics, the texture
        head's pixels: one patch per style token for the attention head, the style's row
        segments (:func:`patch_source`) for the nearest-patch head, and the nearest-patch
        bank's match codes: which bank patches are invalid is in their norms)."""
        stats_count, per_token = self.num_stat_tokens, self.tokens_per_patch
        styles = (memory.shape[1] - stats_count) // (1 + per_token)
        stats = memory[:, styles : styles + stats_count]
        patches = codes = None
        if self._nearest_head:  # [style segments | bank codes | padding], flat
            values = memory[:, styles + stats_count :].flatten(1)
            pixels = 3 * styles * self.config.style_stride**2 * len(BANK_SHIFTS)
            codes_size = self._code_values
            bank = styles * self.patches_per_style_token
            segment = self.config.style_patches // 2
            patches = values[:, :pixels].reshape(memory.shape[0], -1, segment)
            codes = values[:, pixels : pixels + bank * codes_size]
            codes = codes.reshape(memory.shape[0], bank, codes_size)
        elif per_token:  # one pixel patch per style token
            values = memory[:, styles + stats_count :].reshape(memory.shape[0], styles, -1)
            patches = values[..., : self._bank_values]
        mask = None if memory_mask is None else memory_mask[:, :styles]
        return memory[:, :styles], memory_pos[:, :styles], mask, stats, patches, codes

    @property
    def upsample_stage_count(self) -> int:
        return len(self.image_decoder) // 4

    def _skip_stage(self, stride: int) -> int:
        """The image-decoder stage whose x2 upsampling reaches ``stride``."""
        return int(math.log2(self.config.content_stride // stride)) - 1

    # ---- parameter groups (the trainer gives backbones a lower learning rate)

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        for tokenizer in (self.content_tokenizer, self.style_tokenizer):
            yield from (p for p in tokenizer.backbone.parameters() if p.requires_grad)

    def other_parameters(self) -> Iterator[nn.Parameter]:
        backbone = {
            id(p)
            for t in (self.content_tokenizer, self.style_tokenizer)
            for p in t.backbone.parameters()
        }
        yield from (p for p in self.parameters() if p.requires_grad and id(p) not in backbone)

    # ---- padding (eager only: Python ints)

    def pad(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Reflect-pad right/bottom to a multiple of ``pad_multiple``; mask True on padding."""
        height, width = images.shape[-2:]
        multiple = self.config.pad_multiple
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        mask = torch.zeros(
            images.shape[0], height + pad_h, width + pad_w, dtype=torch.bool, device=images.device
        )
        if pad_h or pad_w:
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            images = F.pad(images, (0, pad_w, 0, pad_h), mode=mode)
            mask[:, height:, :] = True
            mask[:, :, width:] = True
        return images, mask

    def prepare_style(self, style: Tensor) -> tuple[Tensor, Tensor]:
        """Resize the style to ``style_size`` (if set) and pad it: inputs for ``encode_style``."""
        size = self.config.style_size
        if size is not None and max(style.shape[-2:]) != size:
            scale = size / max(style.shape[-2:])
            new = (max(1, round(style.shape[-2] * scale)), max(1, round(style.shape[-1] * scale)))
            style = F.interpolate(
                style, size=new, mode="bilinear", align_corners=False, antialias=True
            )
        return self.pad(style)

    # ---- the two exportable halves

    def _normalize(self, images: Tensor) -> Tensor:
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)

    @staticmethod
    def _token_mask(mask: Tensor | None, features: Tensor, stride: int) -> Tensor:
        if mask is None:
            return torch.zeros_like(features[:, 0], dtype=torch.bool)
        return mask[:, ::stride, ::stride]

    def encode_style(
        self, style: Tensor, style_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Padded style ``[B,3,H,W]`` in [0,1] -> (memory ``[B,L,d]``, memory_pos ``[B,L,d]``,
        memory_mask ``[B,L]`` bool, True on padding). H and W must be multiples of 32."""
        skip_strides = self.config.decoder_skip_strides
        features, skips = self.style_tokenizer.features(self._normalize(style), skip_strides)
        mask = self._token_mask(style_mask, features, self.config.style_stride)
        pos = sine_position_encoding(mask, self.config.d_model).to(features.dtype)
        memory = features.flatten(2).transpose(1, 2)
        memory_pos = pos.flatten(2).transpose(1, 2)
        memory_mask = mask.flatten(1)
        key_mask = memory_mask if style_mask is not None else None
        for layer in self.encoder:
            memory = layer(memory, memory_pos, key_mask)
        if self._nearest_head:  # what pasting cuts chosen patches from
            segments, grid = patch_source(style, self.config.style_patches)
        if self.num_stat_tokens:  # statistics ride along as extra memory tokens
            dim = memory.shape[-1]
            tokens = []
            if self.config.colour_film:
                stats = self._mean_std(style, style_mask)
                if self._nearest_head:  # + the bank's patch grid (rows, cols)
                    stats = torch.cat([stats, grid], dim=1)
                tokens.append(F.pad(stats, (0, dim - stats.shape[1])).unsqueeze(1))
                if self.config.colour_transfer == "histogram":
                    tokens.append(channel_quantiles(style, style_mask, dim))
                if self._nearest_head:
                    tokens.append(channel_quantiles(luminance(style), style_mask, dim))
            for stride, skip, count in zip(skip_strides, skips, self._skip_token_counts()):
                stats = self._mean_std(skip, self._token_mask(style_mask, skip, stride))
                stats = F.pad(stats, (0, count * dim - stats.shape[1]))
                tokens.append(stats.view(-1, count, dim).to(style.dtype))
            token = torch.cat(tokens, dim=1).to(memory.dtype)
            memory = torch.cat([memory, token], dim=1)
            memory_pos = torch.cat([memory_pos, torch.zeros_like(token)], dim=1)
            memory_mask = torch.cat(
                [memory_mask, torch.zeros_like(memory_mask[:, :1]).expand(-1, token.shape[1])],
                dim=1,
            )
        if self.tokens_per_patch:  # what the texture head pastes from
            per_token, dim = self.tokens_per_patch, memory.shape[-1]
            styles = mask.flatten(1).shape[1]
            if self._nearest_head:  # the style's pixels (segments) + its bank's match
                # codes, once per style; the codes flag invalid patches (a Stylizer drops
                # an unpadded style's mask), and a chosen patch is read from the pixels
                config = self.config
                codes = style_codes(
                    style,
                    style_mask,
                    config.style_patches,
                    config.patch_descriptor_cells,
                    config.patch_chroma_cells,
                )
                values = torch.cat([segments.flatten(1), codes.flatten(1)], dim=1)
                values = F.pad(values, (0, styles * per_token * dim - values.shape[1]))
                tokens = values.reshape(values.shape[0], -1, dim).to(memory.dtype)
                invalid = torch.zeros_like(tokens[..., 0], dtype=torch.bool)
            else:  # one pixel patch per style token
                patches = self._style_patches(style)
                patches = F.pad(patches, (0, per_token * dim - patches.shape[-1]))
                tokens = patches.reshape(patches.shape[0], -1, dim).to(memory.dtype)
                invalid = mask.flatten(1).repeat_interleave(per_token, dim=1)
            memory = torch.cat([memory, tokens], dim=1)
            memory_pos = torch.cat([memory_pos, torch.zeros_like(tokens)], dim=1)
            memory_mask = torch.cat([memory_mask, invalid], dim=1)
        return memory, memory_pos, memory_mask

    @staticmethod
    def _mean_std(images: Tensor, mask: Tensor | None) -> Tensor:
        """Per-image channel means and stds over real (unpadded) pixels -> ``[B, 2C]``."""
        if mask is None:
            keep = torch.ones_like(images[:, :1])
        else:
            keep = (~mask).unsqueeze(1).to(images.dtype)
        count = keep.sum(dim=(2, 3)).clamp(min=1.0)
        mean = (images * keep).sum(dim=(2, 3)) / count
        var = (((images - mean[..., None, None]) ** 2) * keep).sum(dim=(2, 3)) / count
        return torch.cat([mean, (var + 1e-5).sqrt()], dim=1)

    @classmethod
    def _adain(cls, features: Tensor, mask: Tensor | None, style_stats: Tensor) -> Tensor:
        """Content features renormalised to the style's channel mean/std (AdaIN)."""
        channels = features.shape[1]
        mean, std = cls._mean_std(features, mask)[..., None, None].split(channels, dim=1)
        style_mean, style_std = style_stats[:, : 2 * channels, None, None].split(channels, dim=1)
        return (features - mean) / std * style_std + style_mean

    def decode(
        self,
        content: Tensor,
        memory: Tensor,
        memory_pos: Tensor,
        memory_mask: Tensor | None = None,
        content_mask: Tensor | None = None,
    ) -> Tensor:
        """Padded content ``[B,3,H,W]`` in [0,1] + encoded style -> stylized ``[B,3,H,W]`` in [0,1].

        A style batch of 1 is shared by every content. H and W must be multiples of 32.
        """
        memory, memory_pos, memory_mask, stats, patches, codes = self._split_memory(
            memory, memory_pos, memory_mask
        )
        colour = self.num_colour_tokens
        style_stats = stats[:, :colour] if colour else None
        skip_stats = stats[:, colour:]
        skip_strides = self.config.decoder_skip_strides
        features, skips = self.content_tokenizer.features(self._normalize(content), skip_strides)
        batch, dim, height, width = features.shape
        mask = self._token_mask(content_mask, features, self.config.content_stride)
        pos = sine_position_encoding(mask, dim).to(features.dtype).flatten(2).transpose(1, 2)
        tokens = features.flatten(2).transpose(1, 2)
        if memory.shape[0] != batch:
            memory = memory.expand(batch, -1, -1)
            memory_pos = memory_pos.expand(batch, -1, -1)
            memory_mask = None if memory_mask is None else memory_mask.expand(batch, -1)
            if patches is not None and not self._nearest_head:  # segments serve any batch
                patches = patches.expand(batch, -1, -1)
            codes = None if codes is None else codes.expand(batch, -1, -1)
        key_mask = mask.flatten(1) if content_mask is not None else None
        for layer in self.decoder:
            tokens = layer(tokens, pos, key_mask, memory, memory_pos, memory_mask)
        tokens = self.decoder_norm(tokens)
        grid = tokens.transpose(1, 2).reshape(batch, dim, height, width)
        x = self.output_proj(grid)
        if skip_strides:  # AdaIN-matched content features join after their upsampling
            assert skip_stats is not None
            stages: dict[int, Tensor] = {}
            counts = self._skip_token_counts()
            for i, (stride, skip) in enumerate(zip(skip_strides, skips)):
                first = sum(counts[:i])
                stats = skip_stats[:, first : first + counts[i]].flatten(1).expand(batch, -1)
                skip_mask = None if content_mask is None else content_mask[:, ::stride, ::stride]
                stages[self._skip_stage(stride)] = self._adain(skip, skip_mask, stats)
            last = self.upsample_stage_count - (1 if self.config.content_skip else 0)
            for stage in range(last):
                layers = self.image_decoder[4 * stage : 4 * stage + 4]
                x = layers[1](layers[0](x))  # bottleneck, x2 upsampling
                if stage in stages:
                    x = torch.cat([x, stages[stage].to(x.dtype)], dim=1)
                x = layers[3](layers[2](x))  # reflection pad, 3x3 conv
            if self.config.content_skip:  # leave the last stage's upsampling (1x1 last
                # conv) or pad + conv to the code below
                x = self.image_decoder[-4 : -3 if self._pointwise_output else -2](x)
            out = x
        elif self.config.content_skip:
            x = self.image_decoder[: -3 if self._pointwise_output else -2](x)
        else:
            out = self.image_decoder(x)
        if self.config.content_skip:  # last stage: pad + conv over [features, content]
            # the content enters centred; a 1x1 last conv takes the centring in its bias
            skip = content if self._pointwise_output else content - 0.5
            base = base_logit = change = None
            if style_stats is not None:
                stats = style_stats.expand(batch, -1, -1)
                if self._residual_output:  # per-channel maps of the histogram's table, on
                    # its 256 entries, then one lookup per pixel each (no per-pixel log)
                    table, index = quantile_lookup(content, content_mask, stats[:, 1:4])
                    transferred = look_up(table, index, content)
                    film = self._colour_film(table - 0.5, memory, memory_mask)
                    recoloured = look_up(film, index, content)
                    base_table = (film + 0.5).clamp(0.0, 1.0)
                    base_logit = look_up(_logit(base_table), index, content)
                    if not self._nearest_head:
                        base = look_up(base_table, index, content)
                else:
                    transferred = self._recolour(content, content_mask, stats)
                    recoloured = self._colour_film(transferred - 0.5, memory, memory_mask)
                skip = torch.cat([skip, recoloured], dim=1)
            if patches is not None and self._nearest_head:  # the teacher's finest pass, once
                assert base_logit is not None and style_stats is not None and codes is not None
                # from the plain histogram transfer (the teacher's start), so what the
                # colour FiLM learns cannot move the patch matches
                synthesised = self._synthesise(
                    content, content_mask, transferred, patches, codes, style_stats
                )
                change = _logit(synthesised) - base_logit
                skip = torch.cat([skip, change], dim=1)
            elif patches is not None:  # the style's texture, pasted where the content asks
                start = base if base is not None else content
                mosaic = self._paste_patches(tokens, start, memory, memory_mask, patches)
                if base is not None:  # in the logit space the output lives in
                    skip = torch.cat([skip, _logit(mosaic) - _logit(base)], dim=1)
                else:
                    skip = torch.cat([skip, mosaic - 0.5], dim=1)
            last = self.image_decoder[-1]
            if self._pointwise_output:  # a 1x1 conv commutes with bilinear upsampling: its
                # features' share is taken at half resolution, then upsampled
                features = x.shape[1]
                centring = 0.5 * last.weight[:, features : features + 3].sum(dim=(1, 2, 3))
                x = F.conv2d(x, last.weight[:, :features], last.bias - centring)
                out = self.image_decoder[-3](x) + F.conv2d(skip, last.weight[:, features:])
            else:
                out = last(self.image_decoder[-2](torch.cat([x, skip], dim=1)))
            if change is not None:  # the gate: where the output follows the synthesis
                out, gate = out.split([3, 1], dim=1)  # one op, not two slices
                base_logit = base_logit + torch.sigmoid(gate) * change
            if base_logit is not None:  # a change to the recoloured content
                if self.config.output_activation == "sigmoid":
                    return torch.sigmoid(out + base_logit)
                return (out + torch.sigmoid(base_logit)).clamp(0.0, 1.0)
        if self.config.output_activation == "sigmoid":
            return torch.sigmoid(out)
        return out.clamp(0.0, 1.0)

    def _recolour(
        self, content: Tensor, content_mask: Tensor | None, style_stats: Tensor
    ) -> Tensor:
        """The content's colours moved to the style's by mean/std (AdaIN on pixels); the
        histogram transfer is a table lookup in :meth:`decode`."""
        content_mean, content_std = self._mean_std(content, content_mask).split(3, dim=1)
        style_mean, style_std = style_stats[:, 0, :6].split(3, dim=1)
        scale = (style_std / content_std)[..., None, None]
        return (
            (content - content_mean[..., None, None]) * scale + style_mean[..., None, None]
        ).clamp(0, 1)

    def _colour_film(self, values: Tensor, memory: Tensor, memory_mask: Tensor | None) -> Tensor:
        """Per-image RGB scale/shift, from the mean style token, of centred recoloured
        ``values [B,3,...]``: the pixels, or the histogram's lookup table."""
        if memory_mask is None:
            pooled = memory.mean(dim=1)
        else:
            keep = (~memory_mask).unsqueeze(-1).to(memory.dtype)
            pooled = (memory * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)
        params = self.colour_head(pooled)
        trailing = (1,) * (values.dim() - 2)
        scale, shift = params.view(-1, 6, *trailing).split(3, dim=1)
        return values * (1.0 + scale) + shift

    def forward(self, content: Tensor, style: Tensor) -> Tensor:
        """Images ``[B,3,H,W]`` in [0,1] of any size -> stylized content, same size as content."""
        if content.ndim != 4 or content.shape[1] != 3 or style.ndim != 4 or style.shape[1] != 3:
            raise ValueError(
                f"STTR expects [B,3,H,W] images, got content {tuple(content.shape)} and style {tuple(style.shape)}"
            )
        height, width = content.shape[-2:]
        style, style_mask = self.prepare_style(style)
        memory, memory_pos, memory_mask = self.encode_style(
            style, style_mask if style_mask.any() else None
        )
        padded, content_mask = self.pad(content)
        out = self.decode(
            padded, memory, memory_pos, memory_mask, content_mask if content_mask.any() else None
        )
        return out[..., :height, :width]

    # ---- checkpoints

    def inference_copy(self) -> STTR:
        """A copy for inference only, with each frozen BatchNorm folded into the convolution
        before it (onnxruntime does the same when it loads an export): the same outputs to
        float rounding, about 20% faster in eager mode on a CPU at 512 px (bench/student.py).
        It cannot be trained or saved: its tensors no longer match the config."""
        from torchvision.ops.misc import FrozenBatchNorm2d

        folded = copy.deepcopy(self).eval()
        for parent in folded.modules():
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
        folded.requires_grad_(False)
        folded._inference_only = True
        return folded

    def save_pretrained(
        self, directory: str | os.PathLike, model_card: dict[str, Any] | None = None
    ) -> Path:
        """Write ``config.json``, ``model.safetensors`` and a model card ``README.md``."""
        from safetensors.torch import save_file

        from .. import __version__

        if getattr(self, "_inference_only", False):
            raise ConfigError("an inference_copy() cannot be saved: save the model it came from")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "model_type": "sttr",
            "styledistill_version": __version__,
            **self.config.to_dict(),
        }
        state = {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict().items()}
        _atomic_write(
            directory / WEIGHTS_NAME, lambda p: save_file(state, str(p), metadata={"format": "pt"})
        )
        _atomic_write(
            directory / CONFIG_NAME, lambda p: p.write_text(json.dumps(config, indent=2) + "\n")
        )
        card = _model_card(self, model_card or {})
        _atomic_write(directory / MODEL_CARD_NAME, lambda p: p.write_text(card))
        return directory

    @staticmethod
    def read_config(directory: str | os.PathLike) -> tuple[Path, STTRConfig]:
        """The checkpoint folder (a run's ``student/`` when given the run) and its config,
        checked, without reading the weights."""
        directory = Path(directory)
        if not directory.exists():
            raise CheckpointError(f"{directory}: no such checkpoint folder")
        if directory.is_file():
            raise CheckpointError(
                f"{directory}: expected a checkpoint folder with {CONFIG_NAME}, got a file"
            )
        if (
            not (directory / CONFIG_NAME).exists()
            and (directory / "student" / CONFIG_NAME).exists()
        ):
            directory = directory / "student"
        config_path = directory / CONFIG_NAME
        if not config_path.is_file():
            raise CheckpointError(f"{config_path}: missing (not an STTR checkpoint folder)")
        try:
            data = json.loads(config_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{config_path}: invalid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("model_type", "sttr") != "sttr":
            raise CheckpointError(f"{config_path}: not an STTR config")
        try:
            config = STTRConfig.from_dict(data, source=str(config_path))
        except (ConfigError, TypeError) as exc:
            raise CheckpointError(str(exc).splitlines()[0]) from None
        return directory, config

    @classmethod
    def from_pretrained(
        cls,
        directory: str | os.PathLike,
        *,
        allow_pickle: bool = False,
        map_location: str | torch.device = "cpu",
    ) -> STTR:
        """Load a ``save_pretrained`` folder (or a training run holding ``student/``).

        Pickled weights (``pytorch_model.bin``, ``model.pt``...) are refused unless
        ``allow_pickle=True``, and then read with ``torch.load(weights_only=True)``.
        """
        directory, config = cls.read_config(directory)
        weights = directory / WEIGHTS_NAME
        if not weights.exists():
            pickles = [directory / n for n in PICKLE_WEIGHT_NAMES if (directory / n).exists()]
            if not pickles:
                raise CheckpointError(f"{weights}: missing")
            weights = pickles[0]
        state = read_state_dict(weights, allow_pickle=allow_pickle)
        with torch.device("meta"):
            model = cls(config)
        model.to_empty(device=map_location)
        model._restore_buffers()
        try:
            incompatible = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            lines = [ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln]
            raise CheckpointError(
                f"{weights}: {lines[0] if lines else 'does not fit the config'}"
            ) from None
        problems = list(incompatible.missing_keys) + list(incompatible.unexpected_keys)
        if problems:
            raise CheckpointError(
                f"{weights}: does not match {CONFIG_NAME} ({len(incompatible.missing_keys)} missing, "
                f"{len(incompatible.unexpected_keys)} unexpected tensors, e.g. {problems[0]})"
            )
        return model.eval()

    def _restore_buffers(self) -> None:
        """Non-persistent buffers are not in the state dict; refill them after to_empty."""
        device = self.mean.device
        self.mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return count_parameters(self, trainable_only=trainable_only)


def count_parameters(module: nn.Module, *, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


def _model_card(model: STTR, card: dict[str, Any]) -> str:
    config = model.config
    params = model.num_parameters()
    lines = [
        f"# {card.get('title', 'STTR style-transfer student')}",
        "",
        "A feed-forward style-transfer transformer (STTR, Wang et al., ACCV 2022) made with "
        f"styledistill, distilled from the teacher named below "
        f"({card.get('teacher', 'not recorded')}).",
        "",
        f"- preset: {config.name}",
        f"- parameters: {params:,} ({params / 1e6:.1f}M)",
        f"- tokenizers: content {config.content_backbone}/stride {config.content_stride}, "
        f"style {config.style_backbone}/stride {config.style_stride}",
        f"- transformer: d={config.d_model}, {config.num_heads} heads, FFN {config.ffn_dim}, "
        f"{config.encoder_layers} encoder + {config.decoder_layers} decoder layers",
        f"- training data: {card.get('training_data', 'not recorded')}",
        f"- teacher: {card.get('teacher', 'not recorded')}",
    ]
    lines += [
        f"- {key.replace('_', ' ')}: {value}"
        for key, value in card.items()
        if key not in ("title", "training_data", "teacher")
    ]
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from styledistill.student import Stylizer",
        "stylizer = Stylizer.from_pretrained('THIS_FOLDER')",
        "stylizer('photo.jpg', 'painting.jpg').save('out.png')",
        "```",
        "",
        "or `styledistill stylize THIS_FOLDER --content photo.jpg --style painting.jpg`.",
        "",
    ]
    return "\n".join(lines)
