"""Distillation losses: the student learns the teacher's output (design §6).

Terms (each with its own weight; a weight of 0 turns the term off):

- ``pixel``: L1 between student and teacher images.
- ``perceptual``: L1 between VGG19 features (relu1_1..relu5_1) of student and teacher.
- ``content``: the official STTR content loss, MSE at relu4_1 against the *content* image.
- ``style``: the official STTR style loss, MSE of per-channel mean and std over
  relu1_1..relu4_1 against the *style* image.

The three VGG terms share one VGG19 forward of the student output (with gradients) and
one no-grad forward of the targets. VGG needs ImageNet weights to mean anything: they
come from torchvision (``"imagenet"``, a download) or a local file. Without them the
VGG terms are switched off with a warning; random VGG features are used only when
``allow_random_vgg=True`` (tests).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import CheckpointError, ConfigError

__all__ = [
    "VGG_LAYERS",
    "DistillationLoss",
    "LossWeights",
    "VGGFeatures",
    "build_vgg19_features",
    "load_vgg19_features",
]

#: Index of each named ReLU inside ``torchvision.models.vgg19().features``.
VGG_LAYERS: dict[str, int] = {
    "relu1_1": 1,
    "relu2_1": 6,
    "relu3_1": 11,
    "relu4_1": 20,
    "relu5_1": 29,
}
PERCEPTUAL_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_1"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def build_vgg19_features(num_layers: int = 30) -> nn.Sequential:
    """torchvision's VGG19 ``features`` (random weights), cut after ``num_layers`` modules.

    Built from torchvision's layer table so the module indices (and state-dict keys)
    match ``vgg19().features`` exactly, without allocating the 120M-parameter classifier.
    """
    from torchvision.models import vgg

    layers = vgg.make_layers(vgg.cfgs["E"], batch_norm=False)
    for module in layers:
        if isinstance(module, nn.ReLU):
            module.inplace = False  # captured activations must not be overwritten
    return nn.Sequential(*list(layers.children())[:num_layers])


def _features_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Accept a full ``vgg19`` state dict (``features.N.*``) or a features-only one."""
    if any(key.startswith("features.") for key in state):
        return {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    return dict(state)


def load_vgg19_features(source: str | os.PathLike, num_layers: int = 30) -> nn.Sequential:
    """VGG19 features with ImageNet weights from ``"imagenet"`` (torchvision) or a file.

    A file may be ``.safetensors`` or a torch file loadable with ``weights_only=True``,
    holding either the whole ``vgg19`` state dict or only its ``features``. Raises
    :class:`CheckpointError` when the file is missing or does not fit VGG19.
    """
    features = build_vgg19_features(num_layers)
    if str(source) == "imagenet":
        from torchvision.models import VGG19_Weights, vgg19

        full = vgg19(weights=VGG19_Weights.IMAGENET1K_V1)
        state = _features_state_dict(full.state_dict())
    else:
        path = Path(source)
        if not path.is_file():
            raise CheckpointError(f"VGG weights {path}: no such file")
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(path))
            else:
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # corrupt or untrusted file
            raise CheckpointError(f"VGG weights {path}: cannot read ({exc})") from None
        if not isinstance(state, dict):
            raise CheckpointError(f"VGG weights {path}: not a state dict")
        state = _features_state_dict(state)
    wanted = features.state_dict()
    missing = [k for k in wanted if k not in state]
    if missing:
        raise CheckpointError(
            f"VGG weights {source}: not a VGG19 state dict (missing {', '.join(missing[:3])})"
        )
    for key, value in wanted.items():
        if state[key].shape != value.shape:
            raise CheckpointError(
                f"VGG weights {source}: {key} has shape {tuple(state[key].shape)}, "
                f"expected {tuple(value.shape)}"
            )
    features.load_state_dict({k: state[k] for k in wanted})
    return features


class VGGFeatures(nn.Module):
    """Frozen VGG19 that returns the named ReLU activations of ImageNet-normalized input."""

    def __init__(self, features: nn.Sequential, layers: Sequence[str]) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in VGG_LAYERS]
        if unknown:
            raise ConfigError(f"unknown VGG layer(s) {unknown}; choose from {list(VGG_LAYERS)}")
        self.layers = tuple(sorted(set(layers), key=VGG_LAYERS.__getitem__))
        last = max(VGG_LAYERS[name] for name in self.layers)
        self.features = nn.Sequential(*list(features.children())[: last + 1])
        for module in self.features:
            if isinstance(module, nn.ReLU):
                module.inplace = False
        self.features.requires_grad_(False)
        self.features.eval()
        self.register_buffer(
            "mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self._index_to_name = {VGG_LAYERS[name]: name for name in self.layers}

    def train(self, mode: bool = True) -> VGGFeatures:
        super().train(mode)
        self.features.eval()  # always frozen
        return self

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        out: dict[str, torch.Tensor] = {}
        for index, module in enumerate(self.features):
            x = module(x)
            if index in self._index_to_name:
                out[self._index_to_name[index]] = x
        return out


@dataclass
class LossWeights:
    """Weight of each term; 0 switches a term off."""

    pixel: float = 1.0
    perceptual: float = 0.1
    content: float = 0.0
    style: float = 0.0

    def __post_init__(self) -> None:
        for name in ("pixel", "perceptual", "content", "style"):
            value = getattr(self, name)
            if not (value >= 0.0) or value == float("inf"):
                raise ConfigError(f"loss weight {name}={value!r} must be a finite number >= 0")


def _mean_std(features: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    flat = features.flatten(2)
    mean = flat.mean(dim=2)
    std = (flat.var(dim=2, unbiased=False) + eps).sqrt()
    return mean, std


class DistillationLoss(nn.Module):
    """Student-vs-teacher loss; ``forward`` returns ``(total, {term: value})``.

    ``vgg_weights``: ``None`` (no VGG), ``"imagenet"`` (torchvision download) or a file.
    When VGG is unavailable the VGG terms with a non-zero weight are switched off and a
    warning says so; ``allow_random_vgg=True`` uses random VGG weights instead (tests
    only: random features are not a perceptual measure).
    """

    def __init__(
        self,
        weights: LossWeights | None = None,
        *,
        vgg_weights: str | os.PathLike | None = None,
        allow_random_vgg: bool = False,
        perceptual_layers: Sequence[str] = PERCEPTUAL_LAYERS,
        warn: bool = True,
    ) -> None:
        super().__init__()
        self.weights = LossWeights(**vars(weights)) if weights is not None else LossWeights()
        self.perceptual_layers = tuple(perceptual_layers)
        self.disabled: dict[str, str] = {}
        vgg_terms = [t for t in ("perceptual", "content", "style") if getattr(self.weights, t) > 0]
        self.vgg: VGGFeatures | None = None
        if vgg_terms:
            layers: set[str] = set()
            if self.weights.perceptual > 0:
                layers.update(self.perceptual_layers)
            if self.weights.content > 0:
                layers.add(CONTENT_LAYER)
            if self.weights.style > 0:
                layers.update(STYLE_LAYERS)
            features, reason = self._vgg_features(vgg_weights, allow_random_vgg)
            if features is None:
                for term in vgg_terms:
                    self.disabled[term] = reason
                    setattr(self.weights, term, 0.0)
                if warn:
                    warnings.warn(
                        f"loss terms {', '.join(vgg_terms)} disabled: {reason}",
                        stacklevel=2,
                    )
            else:
                self.vgg = VGGFeatures(features, sorted(layers))
        if not self.active_terms():
            raise ConfigError(
                "every loss term is off (pixel weight 0 and no usable VGG term); "
                "set --pixel-weight > 0 or give --vgg-weights"
            )

    @staticmethod
    def _vgg_features(
        source: str | os.PathLike | None, allow_random: bool
    ) -> tuple[nn.Sequential | None, str]:
        if source is not None:
            if str(source) == "imagenet":
                try:
                    return load_vgg19_features("imagenet"), ""
                except Exception as exc:  # offline: no download possible
                    if allow_random:
                        return build_vgg19_features(), ""
                    return None, f"VGG19 ImageNet weights could not be downloaded ({exc})"
            return load_vgg19_features(source), ""  # an explicit file must work
        if allow_random:
            return build_vgg19_features(), ""
        return None, "no VGG19 weights given (pass --vgg-weights imagenet or a file)"

    def active_terms(self) -> list[str]:
        """Names of the terms with a non-zero weight, in a fixed order."""
        return [
            t for t in ("pixel", "perceptual", "content", "style") if getattr(self.weights, t) > 0
        ]

    def forward(
        self,
        student: torch.Tensor,
        teacher: torch.Tensor,
        content: torch.Tensor | None = None,
        style: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted total and the unweighted value of each active term (for logging)."""
        w = self.weights
        student = student.float()
        teacher = teacher.float()
        terms: dict[str, torch.Tensor] = {}
        if w.pixel > 0:
            terms["pixel"] = F.l1_loss(student, teacher)
        if self.vgg is not None and (w.perceptual > 0 or w.content > 0 or w.style > 0):
            if w.content > 0 and content is None:
                raise ConfigError("the content loss needs the content images")
            if w.style > 0 and style is None:
                raise ConfigError("the style loss needs the style images")
            student_feats = self.vgg(student)
            with torch.no_grad():
                targets = []
                if w.perceptual > 0:
                    targets.append(("teacher", teacher))
                if w.content > 0:
                    targets.append(("content", content.float()))
                if w.style > 0:
                    targets.append(("style", style.float()))
                target_feats = self._target_features(targets)
            if w.perceptual > 0:
                terms["perceptual"] = torch.stack(
                    [
                        F.l1_loss(student_feats[name], target_feats["teacher"][name])
                        for name in self.perceptual_layers
                    ]
                ).mean()
            if w.content > 0:
                terms["content"] = F.mse_loss(
                    student_feats[CONTENT_LAYER], target_feats["content"][CONTENT_LAYER]
                )
            if w.style > 0:
                style_terms = []
                for name in STYLE_LAYERS:
                    s_mean, s_std = _mean_std(student_feats[name])
                    t_mean, t_std = _mean_std(target_feats["style"][name])
                    style_terms.append(F.mse_loss(s_mean, t_mean) + F.mse_loss(s_std, t_std))
                terms["style"] = torch.stack(style_terms).sum()
        total = sum(getattr(w, name) * value for name, value in terms.items())
        return total, terms  # type: ignore[return-value]

    def _target_features(
        self, targets: list[tuple[str, torch.Tensor]]
    ) -> dict[str, dict[str, torch.Tensor]]:
        """Features of all target images in one VGG pass when their sizes agree."""
        assert self.vgg is not None
        out: dict[str, dict[str, torch.Tensor]] = {}
        same_size = len({tuple(t.shape[-2:]) for _, t in targets}) == 1
        if same_size and len(targets) > 1:
            sizes = [t.shape[0] for _, t in targets]
            feats = self.vgg(torch.cat([t for _, t in targets]))
            for layer, value in feats.items():
                for (name, _), chunk in zip(targets, value.split(sizes)):
                    out.setdefault(name, {})[layer] = chunk
        else:
            for name, tensor in targets:
                out[name] = self.vgg(tensor)
        return out
