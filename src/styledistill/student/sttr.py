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

The two halves export to ONNX separately, so a style is encoded once for many contents:
``encode_style`` gives a :class:`~styledistill.student.memory.StyleMemory` (named
tensors), ``decode`` takes it.

The small preset's parts live in their own modules, each switched on by a setting: the
AdaIN skips (``skips``), the colour prior (``colour``) and the 1x1 output layer over the
content (``decoder.SkipOutput``). Also apart: the image decoder's stages (``decoder``),
backbones (``backbones``), presets (``presets``), saving, loading and the model card
(``modeling_utils``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..feature_stats import masked_mean_std
from ..values import check_fields
from .backbones import BACKBONES, Tokenizer, fold_frozen_batchnorm
from .colour import ColourPriorConfig
from .decoder import DecoderStage, SkipOutput
from .memory import StyleMemory
from .modeling_utils import ModelMixin, count_parameters
from .skips import SkipConfig, adain

__all__ = ["STTR", "STTRConfig", "StyleMemory", "count_parameters", "sine_position_encoding"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# --------------------------------------------------------------------------- config

#: Settings that are sub-configs: name -> (class, the dict key in config.json).
_SUB_CONFIGS = {"colour_prior": ColourPriorConfig, "skips": SkipConfig}


@dataclass
class STTRConfig:
    """Everything needed to rebuild the architecture; saved as ``config.json``.

    Strides say where a tokenizer cuts its backbone: 4, 8, 16 or 32 (ResNet layer1..4,
    or the matching MobileNet block). The image decoder upsamples ``log2(content_stride)``
    times, with widths ``decoder_channels`` (default: the content tokenizer's channels
    halved each stage, as in the official code).
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
    #: pad before each, as the official code) or ``"zeros"`` (the conv's own padding: in
    #: onnxruntime a separate pad op takes each tensor out of the convs' blocked layout).
    decoder_padding: str = "reflect"
    #: Backbone BatchNorm: ``"frozen"`` (statistics and affine as buffers, like the
    #: official code; right for pretrained weights) or ``"batch"`` (trainable BatchNorm
    #: with batch statistics; the trainer picks it for backbones trained from random init,
    #: where frozen statistics go stale as the weights move and gradients overflow).
    backbone_norm: str = "frozen"
    #: Freeze the backbone stem and layer1 (conv1..layer1) like the official code.
    freeze_backbone_stem: bool = True
    #: Inputs are padded to a multiple of this (the style tokenizer's stride).
    pad_multiple: int = 32
    #: The content image (full resolution) and, with ``colour_prior``, the content
    #: recoloured to the style enter a 1x1 last layer beside the decoder's features
    #: (:class:`SkipOutput`). Off: the paper's last 3x3 conv.
    content_skip: bool = False
    #: The output as a change to the content histogram-matched to the style (``colour``);
    #: needs ``content_skip``. None: off.
    colour_prior: ColourPriorConfig | None = None
    #: Content-backbone features, AdaIN-matched to the style's, join the image decoder
    #: (``skips``); needs one backbone for content and style. None: the paper's decoder.
    skips: SkipConfig | None = None
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
        subs = {}
        for name, sub_class in _SUB_CONFIGS.items():
            value = data.pop(name, None)
            if value is not None and not isinstance(value, dict):
                raise ConfigError(f"{source}: {name} must be an object or null, got {value!r}")
            if value is not None:
                sub_known = {f.name for f in dataclasses.fields(sub_class)}
                sub_unknown = sorted(set(value) - sub_known)
                if sub_unknown:
                    raise ConfigError(
                        f"{source}: unknown {name} setting(s) {', '.join(sub_unknown)}"
                    )
                check_fields(sub_class, value, f"{source}: {name}")
                subs[name] = sub_class(**value)
        check_fields(cls, data, source)
        config = cls(**data, **subs)
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
        if self.pad_multiple % max(self.content_stride, self.style_stride):
            raise ConfigError(
                f"{source}: pad_multiple {self.pad_multiple} must be a multiple of both strides"
            )
        if self.backbone_norm not in ("frozen", "batch"):
            raise ConfigError(f"{source}: backbone_norm must be 'frozen' or 'batch'")
        if self.decoder_padding not in ("reflect", "zeros"):
            raise ConfigError(f"{source}: decoder_padding must be 'reflect' or 'zeros'")
        if self.colour_prior is not None:
            if not self.content_skip:
                raise ConfigError(f"{source}: colour_prior needs content_skip")
            self.colour_prior.validate(source)
        if self.skips is not None:
            if self.content_backbone != self.style_backbone:
                raise ConfigError(f"{source}: skips need one backbone for content and style")
            self.skips.validate(
                source, BACKBONES[self.content_backbone].channels, self.content_stride
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

    @property
    def skip_strides(self) -> list[int]:
        return list(self.skips.strides) if self.skips is not None else []

    def image_decoder_channels(self) -> list[int]:
        if self.decoder_channels is not None:
            return list(self.decoder_channels)
        width = BACKBONES[self.content_backbone].channels[self.content_stride]
        return [max(2, width // 2**i) for i in range(self.upsample_stages)]


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


# --------------------------------------------------------------------------- the model


def _token_mask(mask: Tensor | None, features: Tensor, stride: int) -> Tensor:
    """The pixel mask at a feature map's stride (all False when ``mask`` is None)."""
    if mask is None:
        return torch.zeros_like(features[:, 0], dtype=torch.bool)
    return mask[:, ::stride, ::stride]


class STTR(ModelMixin, nn.Module):
    """The STTR student. See the module docstring for the data flow."""

    config_class = STTRConfig
    model_type = "sttr"
    card_title = "STTR style-transfer student"
    card_summary = (
        "A feed-forward style-transfer transformer (STTR, Wang et al., ACCV 2022) made with "
        "styledistill"
    )

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
        skip_widths = {
            self._skip_stage(s): BACKBONES[config.content_backbone].channels[s]
            for s in config.skip_strides
        }
        stages = []
        for i, width in enumerate(channels):
            last = i + 1 == len(channels)
            out = None if last and config.content_skip else (3 if last else channels[i + 1])
            stages.append(DecoderStage(width, out, config.decoder_padding, skip_widths.get(i, 0)))
        self.image_decoder = nn.ModuleList(stages)
        self.output: SkipOutput | None = None
        if config.content_skip:
            self.output = SkipOutput(channels[-1], dim, config.colour_prior)
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
        from .presets import preset_config

        return cls(preset_config(name, **overrides), backbone_weights=backbone_weights)

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

    def encode_style(self, style: Tensor, style_mask: Tensor | None = None) -> StyleMemory:
        """Padded style ``[B,3,H,W]`` in [0,1] (``style_mask [B,H,W]`` True on padding, or
        None) -> its :class:`StyleMemory`. H and W must be multiples of ``pad_multiple``."""
        config = self.config
        strides = config.skip_strides
        features, taps = self.style_tokenizer.features(self._normalize(style), strides)
        mask = _token_mask(style_mask, features, config.style_stride)
        pos = sine_position_encoding(mask, config.d_model).to(features.dtype)
        tokens = features.flatten(2).transpose(1, 2)
        pos = pos.flatten(2).transpose(1, 2)
        key_mask = mask.flatten(1) if style_mask is not None else None
        for layer in self.encoder:
            tokens = layer(tokens, pos, key_mask)
        colour = None
        if self.output is not None and self.output.colour is not None:
            colour = self.output.colour.style_quantiles(style, style_mask)
        stats = tuple(
            masked_mean_std(tap, None if style_mask is None else _token_mask(style_mask, tap, s))
            for s, tap in zip(strides, taps)
        )
        return StyleMemory(tokens, pos, key_mask, colour, stats)

    def decode(
        self, content: Tensor, memory: StyleMemory, content_mask: Tensor | None = None
    ) -> Tensor:
        """Padded content ``[B,3,H,W]`` in [0,1] + an encoded style -> stylized ``[B,3,H,W]``
        in [0,1]. H and W must be multiples of ``pad_multiple``."""
        config = self.config
        strides = config.skip_strides
        features, taps = self.content_tokenizer.features(self._normalize(content), strides)
        batch, dim, height, width = features.shape
        memory = memory.expand(batch)
        mask = _token_mask(content_mask, features, config.content_stride)
        pos = sine_position_encoding(mask, dim).to(features.dtype).flatten(2).transpose(1, 2)
        tokens = features.flatten(2).transpose(1, 2)
        key_mask = mask.flatten(1) if content_mask is not None else None
        for layer in self.decoder:
            tokens = layer(tokens, pos, key_mask, memory.tokens, memory.pos, memory.mask)
        tokens = self.decoder_norm(tokens)
        x = self.output_proj(tokens.transpose(1, 2).reshape(batch, dim, height, width))
        skips = {}  # the AdaIN-matched content features, by the stage they join after
        for stride, tap, stats in zip(strides, taps, memory.skip_stats):
            tap_mask = None if content_mask is None else _token_mask(content_mask, tap, stride)
            skips[self._skip_stage(stride)] = adain(tap, tap_mask, stats)
        for index, stage in enumerate(self.image_decoder):
            x = stage(x, skips.get(index))
        if self.output is None:
            return torch.sigmoid(x)
        return self.output(x, content, content_mask, memory)

    def forward(self, content: Tensor, style: Tensor) -> Tensor:
        """Images ``[B,3,H,W]`` in [0,1] of any size -> stylized content, same size as content."""
        if content.ndim != 4 or content.shape[1] != 3 or style.ndim != 4 or style.shape[1] != 3:
            raise ValueError(
                f"STTR expects [B,3,H,W] images, got content {tuple(content.shape)} and style {tuple(style.shape)}"
            )
        height, width = content.shape[-2:]
        style, style_mask = self.prepare_style(style)
        memory = self.encode_style(style, style_mask if style_mask.any() else None)
        padded, content_mask = self.pad(content)
        out = self.decode(padded, memory, content_mask if content_mask.any() else None)
        return out[..., :height, :width]

    # ---- inference and checkpoints

    def inference_copy(self) -> STTR:
        """A copy for inference only, with each frozen BatchNorm folded into the convolution
        before it (onnxruntime does the same when it loads an export): the same outputs to
        float rounding, about 20% faster in eager mode on a CPU at 512 px (bench/student.py).
        It cannot be trained or saved: its tensors no longer match the config."""
        folded = copy.deepcopy(self).eval()
        fold_frozen_batchnorm(folded)
        folded.requires_grad_(False)
        folded._inference_only = True
        return folded

    def _restore_buffers(self) -> None:
        """Non-persistent buffers are not in the state dict; refill them after to_empty."""
        device = self.mean.device
        self.mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def card_facts(self) -> list[str]:
        config = self.config
        params = self.num_parameters()
        return [
            f"preset: {config.name}",
            f"parameters: {params:,} ({params / 1e6:.1f}M)",
            f"tokenizers: content {config.content_backbone}/stride {config.content_stride}, "
            f"style {config.style_backbone}/stride {config.style_stride}",
            f"transformer: d={config.d_model}, {config.num_heads} heads, FFN {config.ffn_dim}, "
            f"{config.encoder_layers} encoder + {config.decoder_layers} decoder layers",
        ]
