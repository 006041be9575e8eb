"""Distillation losses: the student learns what the teacher does, not its blurred mean.

Pixel L1 alone makes any regressor predict the average of the teacher's texture (a
smooth image). The terms that carry texture compare *features* of a pretrained network:

- ``pixel``: L1 between student and teacher images (colour and layout).
- ``perceptual``: L1 between the loss network's features of student and teacher, at
  several depths, each relative to the teacher's mean feature magnitude (so shallow and
  deep layers count alike).
- ``texture``: the style statistics of the teacher's output: per-channel mean and std of
  those features, student vs teacher, relative to the teacher's mean std. Unlike
  ``perceptual`` it ignores where a brush mark lands, only that the marks look alike.
- ``feature``: LPIPS-style, without learned heads: unit-normalised features, squared
  difference (``feature_stats.normalized_feature_distance``), averaged over depths.
- ``stats``: per-channel mean/std of the features, L2 relative to the teacher's std norm
  (``feature_stats.statistics_distance``), averaged over depths. ``feature`` and
  ``stats`` are the formulas of the perceptual metric (``metrics.perceptual``), computed
  on the loss network, never on the metric's network.
- ``content`` / ``style``: the official STTR terms: MSE at the deepest layer against the
  *content* image, and mean/std MSE over the layers against the *style* image.

The loss network is VGG19 (the STTR paper's, when its ImageNet weights are there) or
MobileNetV2 (ImageNet weights ship offline, see ``scripts/setup.sh``). Missing weights
are an error that names the fix: random features are not a perceptual measure, so they
are used only with ``allow_random_weights=True`` (tests), and then with a warning.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import CheckpointError, ConfigError
from .feature_stats import (
    channel_mean_std,
    normalized_feature_distance,
    statistics_distance,
    tile_mean_std,
)

__all__ = [
    "LOSS_NETWORKS",
    "VGG_LAYERS",
    "DistillationLoss",
    "FeatureNetwork",
    "LossWeights",
    "VGGFeatures",
    "build_loss_network",
    "build_vgg19_features",
    "load_vgg19_features",
    "resolve_loss_network",
]

#: Index of each named ReLU inside ``torchvision.models.vgg19().features``.
VGG_LAYERS: dict[str, int] = {
    "relu1_1": 1,
    "relu2_1": 6,
    "relu3_1": 11,
    "relu4_1": 20,
    "relu5_1": 29,
}
#: Last block of each output stride inside ``torchvision.models.mobilenet_v2().features``.
MOBILENET_V2_LAYERS: dict[str, int] = {"stride2": 1, "stride4": 3, "stride8": 6, "stride16": 13}


@dataclass(frozen=True)
class _NetworkSpec:
    layers: Mapping[str, int]
    perceptual: tuple[str, ...]
    content: str
    style: tuple[str, ...]


LOSS_NETWORKS: dict[str, _NetworkSpec] = {
    "vgg19": _NetworkSpec(
        VGG_LAYERS,
        perceptual=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
        content="relu4_1",
        style=("relu1_1", "relu2_1", "relu3_1", "relu4_1"),
    ),
    "mobilenet_v2": _NetworkSpec(
        MOBILENET_V2_LAYERS,
        perceptual=tuple(MOBILENET_V2_LAYERS),
        content="stride16",
        style=tuple(MOBILENET_V2_LAYERS),
    ),
}
PERCEPTUAL_LAYERS = LOSS_NETWORKS["vgg19"].perceptual

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def build_vgg19_features(num_layers: int = 30) -> nn.Sequential:
    """torchvision's VGG19 ``features`` (random weights), cut after ``num_layers`` modules.

    Built from torchvision's layer table so the module indices (and state-dict keys)
    match ``vgg19().features`` exactly, without allocating the 120M-parameter classifier.
    """
    from torchvision.models import vgg

    layers = vgg.make_layers(vgg.cfgs["E"], batch_norm=False)
    return nn.Sequential(*list(layers.children())[:num_layers])


def _build_mobilenet_v2_features() -> nn.Sequential:
    from torchvision.models import mobilenet_v2

    return mobilenet_v2().features[: max(MOBILENET_V2_LAYERS.values()) + 1]


_BUILDERS = {"vgg19": build_vgg19_features, "mobilenet_v2": _build_mobilenet_v2_features}


def _features_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Accept a whole torchvision state dict (``features.N.*``) or a features-only one."""
    if any(key.startswith("features.") for key in state):
        return {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    return dict(state)


def build_loss_network(name: str, source: str | os.PathLike | None) -> nn.Sequential:
    """The ``features`` trunk of a loss network with ImageNet weights.

    ``source``: ``"imagenet"`` (torchvision's file from torch's hub cache, hash-checked)
    or a local ``.safetensors`` / ``weights_only`` torch file with the whole state dict
    or only its ``features``; ``None`` gives random weights (tests). Raises
    :class:`CheckpointError` when the weights are missing or do not fit.
    """
    if name not in LOSS_NETWORKS:
        raise ConfigError(f"loss network {name!r}: choose from {', '.join(LOSS_NETWORKS)}")
    features = _BUILDERS[name]()
    if source is None:
        return features
    if str(source) == "imagenet":
        from .pretrained import imagenet_state_dict

        state = imagenet_state_dict(name)
        label = f"{name} ImageNet weights"
    else:
        from .weights_io import read_state_dict

        path = Path(source)
        if not path.is_file():
            raise CheckpointError(f"{name} weights {path}: no such file")
        state = read_state_dict(path, allow_pickle=True)
        label = f"{name} weights {path}"
    state = _features_state_dict(state)
    wanted = features.state_dict()
    missing = [k for k in wanted if k not in state]
    if missing:
        raise CheckpointError(
            f"{label}: not a {name} state dict (missing {', '.join(missing[:3])})"
        )
    for key, value in wanted.items():
        if state[key].shape != value.shape:
            raise CheckpointError(
                f"{label}: {key} has shape {tuple(state[key].shape)}, expected {tuple(value.shape)}"
            )
    features.load_state_dict({k: state[k] for k in wanted})
    return features


def load_vgg19_features(source: str | os.PathLike, num_layers: int = 30) -> nn.Sequential:
    """VGG19 features with ImageNet weights from ``"imagenet"`` or a file (see above)."""
    if str(source) != "imagenet" and not Path(source).is_file():
        raise CheckpointError(f"VGG weights {source}: no such file")
    return nn.Sequential(*list(build_loss_network("vgg19", source).children())[:num_layers])


def resolve_loss_network(name: str = "auto") -> str:
    """``"auto"``: VGG19 (the paper's) when its ImageNet file is in torch's hub cache,
    else MobileNetV2 (whose file ships offline)."""
    if name != "auto":
        if name not in LOSS_NETWORKS:
            raise ConfigError(
                f"loss network {name!r}: choose from auto, {', '.join(LOSS_NETWORKS)}"
            )
        return name
    from .pretrained import hub_checkpoint_path

    return "vgg19" if hub_checkpoint_path("vgg19")[0].is_file() else "mobilenet_v2"


class FeatureNetwork(nn.Module):
    """A frozen network that returns named activations of ImageNet-normalized input."""

    def __init__(self, features: nn.Sequential, layers: Mapping[str, int]) -> None:
        super().__init__()
        self.layers = tuple(sorted(layers, key=layers.__getitem__))
        last = max(layers.values())
        self.features = nn.Sequential(*list(features.children())[: last + 1])
        for module in self.features.modules():
            if isinstance(module, (nn.ReLU, nn.ReLU6)):
                module.inplace = False  # captured activations must not be overwritten
        self.features.requires_grad_(False)
        self.features.eval()
        self.register_buffer(
            "mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self._index_to_name = {layers[name]: name for name in self.layers}

    def train(self, mode: bool = True) -> FeatureNetwork:
        super().train(mode)
        self.features.eval()  # always frozen (BatchNorm keeps its ImageNet statistics)
        return self

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        out: dict[str, torch.Tensor] = {}
        for index, module in enumerate(self.features):
            x = module(x)
            if index in self._index_to_name:
                out[self._index_to_name[index]] = x
        return out


class VGGFeatures(FeatureNetwork):
    """Frozen VGG19 that returns the named ReLU activations."""

    def __init__(self, features: nn.Sequential, layers: Sequence[str]) -> None:
        unknown = [name for name in layers if name not in VGG_LAYERS]
        if unknown:
            raise ConfigError(f"unknown VGG layer(s) {unknown}; choose from {list(VGG_LAYERS)}")
        super().__init__(features, {name: VGG_LAYERS[name] for name in layers})


TERMS = ("pixel", "perceptual", "texture", "feature", "stats", "content", "style")
_NETWORK_TERMS = ("perceptual", "texture", "feature", "stats", "content", "style")


@dataclass
class LossWeights:
    """Weight of each term; 0 switches a term off."""

    pixel: float = 1.0
    perceptual: float = 0.1
    texture: float = 0.0
    feature: float = 0.0
    stats: float = 0.0
    content: float = 0.0
    style: float = 0.0

    def __post_init__(self) -> None:
        for name in TERMS:
            value = getattr(self, name)
            if not (value >= 0.0) or value == float("inf"):
                raise ConfigError(f"loss weight {name}={value!r} must be a finite number >= 0")


# Added to each channel's variance before its square root in the statistics terms.
_STATS_EPS = 1e-5


def relative_feature_l1(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """L1 between two feature maps, relative to the teacher's mean magnitude."""
    return F.l1_loss(student, teacher) / (teacher.abs().mean().detach() + 1e-6)


def relative_statistics_l1(
    student: torch.Tensor, teacher: torch.Tensor, tiles: int = 1
) -> torch.Tensor:
    """L1 between per-channel means and stds, relative to the teacher's mean std.

    ``tiles`` > 1: the statistics of each tile of a ``tiles`` x ``tiles`` grid (adaptive
    pooling, so any feature size), which a global colour or contrast wash cannot match.
    """
    if tiles == 1:
        s_mean, s_std = channel_mean_std(student, eps=_STATS_EPS)
        t_mean, t_std = channel_mean_std(teacher, eps=_STATS_EPS)
    else:
        s_mean, s_std = tile_mean_std(student, tiles, eps=_STATS_EPS)
        t_mean, t_std = tile_mean_std(teacher, tiles, eps=_STATS_EPS)
    difference = F.l1_loss(s_mean, t_mean) + F.l1_loss(s_std, t_std)
    return difference / (t_std.mean().detach() + 1e-6)


class DistillationLoss(nn.Module):
    """Student-vs-teacher loss; ``forward`` returns ``(total, {term: value})``.

    ``network``: ``"vgg19"`` or ``"mobilenet_v2"`` (``"auto"``: VGG19 when its file is
    cached, else MobileNetV2); ``network_weights``: ``"imagenet"`` (torchvision's file)
    or a local file. Needed as soon as a network term has a weight.
    """

    def __init__(
        self,
        weights: LossWeights | None = None,
        *,
        network: str = "auto",
        network_weights: str | os.PathLike | None = "imagenet",
        allow_random_weights: bool = False,
        perceptual_layers: Sequence[str] | None = None,
        texture_tiles: int = 1,
    ) -> None:
        super().__init__()
        self.weights = LossWeights(**vars(weights)) if weights is not None else LossWeights()
        if texture_tiles < 1:
            raise ConfigError(f"texture tiles {texture_tiles} must be >= 1")
        self.texture_tiles = texture_tiles
        if not self.active_terms():
            raise ConfigError("every loss term is off; give at least one term a weight > 0")
        self.network_name = resolve_loss_network(network)
        spec = LOSS_NETWORKS[self.network_name]
        self.perceptual_layers = tuple(perceptual_layers or spec.perceptual)
        self.content_layer, self.style_layers = spec.content, spec.style
        self.network_source = "" if network_weights is None else str(network_weights)
        self.net: FeatureNetwork | None = None
        network_terms = [t for t in _NETWORK_TERMS if getattr(self.weights, t) > 0]
        if not network_terms:
            return
        if network_weights is None:
            if not allow_random_weights:
                raise ConfigError(
                    f"loss terms {', '.join(network_terms)} need {self.network_name} weights "
                    "(network_weights='imagenet' or a file); random features measure nothing"
                )
            warnings.warn(
                f"loss terms {', '.join(network_terms)} use a RANDOM {self.network_name}: "
                "not a perceptual measure (tests only)",
                stacklevel=2,
            )
            self.network_source = "random (tests only)"
        layers: set[str] = set()
        if self.weights.perceptual > 0 or self.weights.feature > 0:
            layers.update(self.perceptual_layers)
        if self.weights.content > 0:
            layers.add(self.content_layer)
        if self.weights.style > 0 or self.weights.texture > 0 or self.weights.stats > 0:
            layers.update(self.style_layers)
        unknown = sorted(layers - set(spec.layers))
        if unknown:
            raise ConfigError(f"unknown {self.network_name} layer(s) {unknown}")
        features = build_loss_network(self.network_name, network_weights)
        self.net = FeatureNetwork(features, {name: spec.layers[name] for name in layers})

    @property
    def vgg(self) -> FeatureNetwork | None:
        """The loss network when it is VGG19 (the paper's losses)."""
        return self.net if self.network_name == "vgg19" else None

    def describe(self) -> str:
        """Which network and weights trained a checkpoint (for its config and model card)."""
        if self.net is None:
            return "none (pixel L1 only)"
        return f"{self.network_name} ({self.network_source})"

    def active_terms(self) -> list[str]:
        """Names of the terms with a non-zero weight, in a fixed order."""
        return [t for t in TERMS if getattr(self.weights, t) > 0]

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
        if self.net is not None:
            if w.content > 0 and content is None:
                raise ConfigError("the content loss needs the content images")
            if w.style > 0 and style is None:
                raise ConfigError("the style loss needs the style images")
            student_feats = self.net(student)
            with torch.no_grad():
                targets = []
                if w.perceptual > 0 or w.texture > 0 or w.feature > 0 or w.stats > 0:
                    targets.append(("teacher", teacher))
                if w.content > 0:
                    targets.append(("content", content.float()))
                if w.style > 0:
                    targets.append(("style", style.float()))
                target_feats = self._target_features(targets)
            if w.perceptual > 0:
                terms["perceptual"] = torch.stack(
                    [
                        relative_feature_l1(student_feats[name], target_feats["teacher"][name])
                        for name in self.perceptual_layers
                    ]
                ).mean()
            if w.texture > 0:
                terms["texture"] = torch.stack(
                    [
                        relative_statistics_l1(
                            student_feats[name], target_feats["teacher"][name], self.texture_tiles
                        )
                        for name in self.style_layers
                    ]
                ).mean()
            if w.feature > 0:
                terms["feature"] = torch.stack(
                    [
                        normalized_feature_distance(
                            student_feats[name], target_feats["teacher"][name]
                        ).mean()
                        for name in self.perceptual_layers
                    ]
                ).mean()
            if w.stats > 0:
                terms["stats"] = torch.stack(
                    [
                        statistics_distance(
                            student_feats[name], target_feats["teacher"][name], _STATS_EPS
                        ).mean()
                        for name in self.style_layers
                    ]
                ).mean()
            if w.content > 0:
                terms["content"] = F.mse_loss(
                    student_feats[self.content_layer],
                    target_feats["content"][self.content_layer],
                )
            if w.style > 0:
                style_terms = []
                for name in self.style_layers:
                    s_mean, s_std = channel_mean_std(student_feats[name], eps=_STATS_EPS)
                    t_mean, t_std = channel_mean_std(target_feats["style"][name], eps=_STATS_EPS)
                    style_terms.append(F.mse_loss(s_mean, t_mean) + F.mse_loss(s_std, t_std))
                terms["style"] = torch.stack(style_terms).sum()
        total = sum(getattr(w, name) * value for name, value in terms.items())
        return total, terms  # type: ignore[return-value]

    def _target_features(
        self, targets: list[tuple[str, torch.Tensor]]
    ) -> dict[str, dict[str, torch.Tensor]]:
        """Features of all target images in one pass when their sizes agree."""
        assert self.net is not None
        out: dict[str, dict[str, torch.Tensor]] = {}
        same_size = len({tuple(t.shape[-2:]) for _, t in targets}) == 1
        if same_size and len(targets) > 1:
            sizes = [t.shape[0] for _, t in targets]
            feats = self.net(torch.cat([t for _, t in targets]))
            for layer, value in feats.items():
                for (name, _), chunk in zip(targets, value.split(sizes)):
                    out.setdefault(name, {})[layer] = chunk
        else:
            for name, tensor in targets:
                out[name] = self.net(tensor)
        return out
