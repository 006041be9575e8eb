"""The student as training sees it: built from the preset, its BatchNorm statistics kept sane."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .config import TrainConfig


def build_student(config: TrainConfig) -> nn.Module:
    from ..student import STTR

    if config.init is not None:  # its architecture and weights; trained from there
        return STTR.from_pretrained(config.init).train()
    overrides = dict(config.model_overrides)
    if config.backbone_weights is None:
        # Freezing the stem keeps pretrained low-level filters; frozen *random* filters
        # only cripple the tokenizers, so without weights everything trains.
        overrides.setdefault("freeze_backbone_stem", False)
        # Frozen statistics fitted to random weights go stale as those weights train, and
        # the backward pass then overflows (measured: gradient norm 1e24 after 130 steps
        # at lr 1e-3); trainable BatchNorm renormalizes every batch.
        overrides.setdefault("backbone_norm", "batch")
    try:
        return STTR.from_preset(
            config.preset, backbone_weights=config.backbone_weights, **overrides
        )
    except TypeError as exc:
        raise ConfigError(f"model settings: {exc}") from None


@torch.no_grad()
def init_backbone_statistics(model: nn.Module, content: torch.Tensor, style: torch.Tensor) -> None:
    """Give randomly initialised backbones the statistics of real data (data-dependent init).

    The tokenizers' ResNets use *frozen* BatchNorm. With pretrained weights its statistics
    come with the weights; with random weights they are the identity, so nothing
    normalizes the activations and the content signal fades to ~1e-6 by layer 3 (the
    student then only learns a mean colour). One forward pass sets every frozen norm's
    mean/variance to those of its input on a real batch, layer by layer (each hook sees
    the already-normalized output of the layers before it), like BatchNorm at init. The
    variance has a floor of 0.01 so near-constant channels are not blown up.
    """
    from torchvision.ops.misc import FrozenBatchNorm2d

    def use_input_statistics(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0].float()
        module.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        # a floor keeps near-dead channels from being amplified more than 10x (whose
        # gradients, compounded over layers, overflow)
        module.running_var.copy_(x.var(dim=(0, 2, 3), unbiased=False).clamp_min(0.01))

    style_input, _ = model.prepare_style(style)  # type: ignore[operator]
    for tokenizer, images in (
        (model.content_tokenizer, content),
        (model.style_tokenizer, style_input),
    ):
        norms = [m for m in tokenizer.backbone.modules() if isinstance(m, FrozenBatchNorm2d)]
        hooks = [m.register_forward_pre_hook(use_input_statistics) for m in norms]
        try:
            tokenizer.backbone(model._normalize(images))  # type: ignore[operator]
        finally:
            for hook in hooks:
                hook.remove()


@torch.no_grad()
def recalibrated_copy(
    model: nn.Module, batches: Sequence[tuple[torch.Tensor, ...]], device: torch.device
) -> nn.Module:
    """A copy of ``model`` whose trainable BatchNorm statistics are recomputed on ``batches``.

    Running averages lag behind fast-moving weights, and an EMA model's averaged statistics
    do not belong to its averaged weights; either can wreck eval-mode outputs early in
    training. Recomputing them (a cumulative average over a few training batches) is the
    standard fix. The training model is untouched, so resume stays exact.
    """
    copy_ = copy.deepcopy(model).eval()
    norms = [m for m in copy_.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or not batches:
        return copy_
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
        norm.train()
    for content, style, _target in batches:
        copy_(content.to(device), style.to(device))
    for norm in norms:
        norm.eval()
    return copy_


def all_finite(module: nn.Module) -> bool:
    return all(
        torch.isfinite(p).all() for p in module.state_dict().values() if p.dtype.is_floating_point
    )
