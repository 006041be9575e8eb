"""An offline teacher that looks like StyleID: neural style transfer by optimisation.

Gatys, Ecker & Bethge (CVPR 2016), "Image Style Transfer Using Convolutional Neural
Networks", on the ImageNet MobileNetV2 that ships offline (torchvision's file, placed in
torch's hub cache by ``scripts/setup.sh``), or on VGG19 (the paper's network) when its
file is there. The output starts as the content histogram-matched to the style and is
optimised (Adam, in logit space, ``steps`` steps) so that

- its features at the content layers stay those of the content (the layout, the edges),
- its Gram matrices at the style layers become those of the style (the brushwork).

Like StyleID it keeps the photo's structure and repaints it with the style's palette and
marks; unlike the texture teacher it pastes no patches, so no tile grid shows on flat
areas. The defaults were chosen by ``bench/styleid_real.py --teachers`` against real
StyleID outputs on the training split of ``styleid_real`` (bench/RESULTS.md). It is
deterministic: there is no noise, and the seed is recorded but changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import ConfigError
from ..image_ops import histogram_matched
from ..images import center_crop_resize, load_image
from ..values import first_non_finite
from .base import ImageLike, pair_up
from .registry import check_teacher_memory

__all__ = ["GatysTeacher"]

#: Content and style layers per network (names of ``losses.LOSS_NETWORKS`` layers).
_LAYERS = {
    "mobilenet_v2": (("stride8", "stride16"), ("stride2", "stride4", "stride8", "stride16")),
    "vgg19": (("relu4_1",), ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")),
}


def _gram(features: torch.Tensor) -> torch.Tensor:
    batch, channels = features.shape[:2]
    flat = features.reshape(batch, channels, -1)
    return flat @ flat.transpose(1, 2) / flat.shape[-1]


class GatysTeacher:
    """Optimisation-based style transfer on a pretrained network; CPU or GPU, offline.

    Settings (all in :meth:`config`): ``size`` (output side; inputs are centre-cropped
    and resized, StyleID's preprocessing), ``steps`` and ``lr`` (Adam on the output's
    logits), ``content_weight`` and ``style_weight`` (each term is relative to its
    target's magnitude, so 1 and 1 weigh them alike), ``network`` (``mobilenet_v2`` or
    ``vgg19``) and ``network_weights`` (``"imagenet"``: torchvision's file from torch's
    hub cache, or a local file). ``device``: where the optimisation runs.
    """

    name = "gatys"

    def __init__(
        self,
        *,
        size: int = 256,
        seed: int = 0,
        steps: int = 40,
        lr: float = 0.03,
        content_weight: float = 1.0,
        style_weight: float = 1.0,
        network: str = "mobilenet_v2",
        network_weights: str = "imagenet",
        device: torch.device | str | None = None,
        max_pixels: int | None = None,
    ) -> None:
        self.size = int(size)
        self.seed = int(seed)
        self.steps = int(steps)
        self.lr = float(lr)
        self.content_weight = float(content_weight)
        self.style_weight = float(style_weight)
        self.network = str(network)
        self.network_weights = str(network_weights)
        self._validate()
        check_teacher_memory("gatys", self.size, max_pixels=max_pixels, device=device)
        self.device = torch.device(device or "cpu")
        self._net: Any = None

    # ------------------------------------------------------------------ protocol

    def config(self) -> dict[str, Any]:
        """Every setting that affects the output (JSON-serializable)."""
        return {
            "teacher": self.name,
            "size": self.size,
            "seed": self.seed,
            "steps": self.steps,
            "lr": self.lr,
            "content_weight": self.content_weight,
            "style_weight": self.style_weight,
            "network": self.network,
            "network_weights": self.network_weights,
        }

    def model_info(self) -> dict[str, Any]:
        return {"model_id": f"torchvision/{self.network}", "revision": self.network_weights}

    def prepare_style(self, style: ImageLike) -> torch.Tensor:
        """The style as the teacher sees it (``[3, size, size]``); its Gram matrices are
        computed per batch, which costs one forward pass."""
        if isinstance(style, torch.Tensor) and tuple(style.shape) == (3, self.size, self.size):
            return style
        return center_crop_resize(load_image(style), self.size)

    def stylize(
        self,
        contents: Sequence[ImageLike] | torch.Tensor,
        styles: Sequence[Any] | torch.Tensor,
        *,
        batch_size: int | None = None,
        seeds: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Stylize each (content, style) pair; returns ``[B, 3, size, size]`` in [0, 1].

        ``styles``: one per content, or a single one for all. Pairs are optimised
        ``batch_size`` at a time (default 1); each pair's result does not depend on the
        others (the losses are per image and Adam is per element). ``seeds`` are
        accepted for the protocol and change nothing.
        """
        content_list, style_list, _ = pair_up(
            "gatys", contents, styles, batch_size=batch_size, seeds=seeds, default_seed=self.seed
        )
        step = batch_size or 1
        outputs = []
        for start in range(0, len(content_list), step):
            chunk_c = [self.prepare_style(c) for c in content_list[start : start + step]]
            chunk_s = [self.prepare_style(s) for s in style_list[start : start + step]]
            outputs.append(self._optimise(torch.stack(chunk_c), torch.stack(chunk_s)))
        return torch.cat(outputs)

    # ------------------------------------------------------------------ internals

    def _validate(self) -> None:
        def fail(message: str) -> None:
            raise ConfigError(f"gatys teacher: {message}")

        for name in ("lr", "content_weight", "style_weight"):
            if first_non_finite(getattr(self, name)) is not None:
                fail(f"{name} must be a finite number, got {getattr(self, name)}")
        if self.size < 32:
            fail(f"size must be >= 32, got {self.size}")
        if self.steps < 0:
            fail(f"steps must be >= 0, got {self.steps}")
        if self.lr <= 0 or self.content_weight < 0 or self.style_weight < 0:
            fail("lr must be > 0 and the weights >= 0")
        if self.network not in _LAYERS:
            fail(f"network {self.network!r}: choose from {', '.join(_LAYERS)}")

    def _network(self) -> Any:
        """The frozen loss network, built on first use (so building a teacher is cheap)."""
        if self._net is None:
            from ..losses import LOSS_NETWORKS, FeatureNetwork, build_loss_network

            content_layers, style_layers = _LAYERS[self.network]
            layers = LOSS_NETWORKS[self.network].layers
            wanted = {name: layers[name] for name in {*content_layers, *style_layers}}
            features = build_loss_network(self.network, self.network_weights)
            self._net = FeatureNetwork(features, wanted).to(self.device)
        return self._net

    def _optimise(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        net = self._network()
        content_layers, style_layers = _LAYERS[self.network]
        start = torch.stack([histogram_matched(c, s) for c, s in zip(content, style)])
        content, style = content.to(self.device), style.to(self.device)
        with torch.no_grad():
            content_features = net(content)
            style_grams = {name: _gram(f) for name, f in net(style).items() if name in style_layers}
        logits = torch.logit(start.clamp(1e-3, 1 - 1e-3)).to(self.device).requires_grad_(True)
        optimiser = torch.optim.Adam([logits], lr=self.lr)
        for _ in range(self.steps):
            features = net(torch.sigmoid(logits))
            loss = logits.new_zeros(())
            for name in content_layers:
                target = content_features[name]
                per_image = (features[name] - target).pow(2).mean(dim=(1, 2, 3))
                loss = (
                    loss
                    + self.content_weight * (per_image / target.pow(2).mean(dim=(1, 2, 3))).sum()
                )
            for name in style_layers:
                gram, target = _gram(features[name]), style_grams[name]
                per_image = (gram - target).abs().mean(dim=(1, 2))
                loss = loss + self.style_weight * (per_image / target.abs().mean(dim=(1, 2))).sum()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        return torch.sigmoid(logits.detach()).cpu().float()
