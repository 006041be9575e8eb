"""Where the metric networks' weights come from: a folder, an explicit file, or a download.

Every metric that needs a pretrained network (art-Inception for FID, AlexNet + LPIPS
heads, VGG19 for CFSD) finds its weights here. Nothing is downloaded unless the caller
asks for it; when a file is missing the metric is skipped and the reason is recorded,
so an offline run still produces every weight-free number.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..plumbing import first_line, sha256_file
from ..weights_io import read_state_dict

__all__ = [
    "WEIGHTS",
    "WeightSpec",
    "WeightsResolver",
    "download_to_hub_cache",
    "load_torchvision_features",
    "read_or_download",
    "state_dict_error",
]


@dataclass(frozen=True)
class WeightSpec:
    """One weights file a metric needs: accepted file names and the public download URL."""

    key: str
    filenames: tuple[str, ...]
    url: str
    description: str


#: The weights the StyleID evaluation protocol uses.
WEIGHTS: dict[str, WeightSpec] = {
    "art_inception": WeightSpec(
        key="art_inception",
        filenames=("art_inception.pth", "art_inception.safetensors"),
        url="https://huggingface.co/matthias-wright/art_inception/resolve/main/art_inception.pth",
        description="ArtFID's art-finetuned Inception-v3 (FID features)",
    ),
    "alexnet": WeightSpec(
        key="alexnet",
        filenames=("alexnet-owt-7be5be79.pth", "alexnet.pth", "alexnet.safetensors"),
        url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        description="torchvision ImageNet AlexNet (LPIPS trunk)",
    ),
    "lpips_alex": WeightSpec(
        key="lpips_alex",
        filenames=("alex.pth", "lpips_alex_v0.1.pth", "lpips_alex.pth", "lpips_alex.safetensors"),
        url="https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth",
        description="LPIPS v0.1 linear heads for AlexNet",
    ),
    "vgg19": WeightSpec(
        key="vgg19",
        filenames=("vgg19-dcbb9e9d.pth", "vgg19.pth", "vgg19.safetensors"),
        url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
        description="torchvision ImageNet VGG19 (CFSD features)",
    ),
}


def read_or_download(
    path: str | os.PathLike | None, url: str, *, download: bool, refusal: str
) -> tuple[dict[str, torch.Tensor], str]:
    """A state dict and where it came from (for messages): from ``path``, else from
    ``url`` through torch hub's cache when ``download`` is true, else ``CheckpointError
    (refusal)``: nothing is downloaded unless the caller asks for it."""
    if path is not None:
        return read_state_dict(path, allow_pickle=True), str(path)
    if download:
        return read_state_dict(download_to_hub_cache(url), allow_pickle=True), url
    raise CheckpointError(refusal)


def download_to_hub_cache(url: str) -> Path:
    """``url``'s file in torch hub's checkpoint cache, downloaded there if missing (where
    torchvision and ``torch.hub`` look, so a file fetched once serves both)."""
    target = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(target), progress=True)
    return target


def state_dict_error(exc: BaseException) -> str:
    """The line of a ``load_state_dict`` error worth showing in a one-line message.

    torch's first line only names the module ("Error(s) in loading state_dict for
    Sequential:"); the second says what does not fit (a size mismatch, a missing key).
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[1] if len(lines) > 1 else (lines[0] if lines else type(exc).__name__)


def load_torchvision_features(
    features: nn.Module,
    state: Mapping[str, torch.Tensor],
    wanted: set[str],
    network: str,
    source: str,
) -> None:
    """Load the ``features.N.*`` entries of a torchvision ``network`` state dict that
    ``wanted`` names (``N.weight`` ...) into ``features``, strictly; a key that is missing
    or a tensor that does not fit is a one-line :class:`CheckpointError` naming ``source``.
    """
    sub = {
        k.removeprefix("features."): v
        for k, v in state.items()
        if k.startswith("features.") and k.removeprefix("features.") in wanted
    }
    missing = sorted(wanted - set(sub))
    if missing:
        raise CheckpointError(
            f"{source}: not a torchvision {network} state dict (missing features.{missing[0]})"
        )
    try:
        features.load_state_dict(sub, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{source}: {network} weights do not fit ({state_dict_error(exc)})"
        ) from None


class WeightsResolver:
    """Finds each metric's weights file, or says why it cannot.

    Looks, in order, at an explicit path (``paths[key]``), ``weights_dir`` (any of the
    spec's file names), torch hub's checkpoint cache (where torchvision and
    ``torch.hub.load_state_dict_from_url`` put downloads), and finally downloads when
    ``download`` is true. ``find`` returns ``(path, None)`` or ``(None, reason)``.
    """

    def __init__(
        self,
        weights_dir: str | os.PathLike | None = None,
        paths: Mapping[str, str | os.PathLike] | None = None,
        *,
        download: bool = False,
        search_hub_cache: bool = True,
    ) -> None:
        self.weights_dir = Path(weights_dir) if weights_dir is not None else None
        if self.weights_dir is not None and not self.weights_dir.is_dir():
            raise ConfigError(f"--weights-dir {self.weights_dir}: no such directory")
        self.paths = {k: Path(v) for k, v in (paths or {}).items()}
        unknown = set(self.paths) - set(WEIGHTS)
        if unknown:
            raise ConfigError(
                f"unknown weights name(s) {sorted(unknown)}; known: {', '.join(WEIGHTS)}"
            )
        for key, path in self.paths.items():
            if not path.is_file():
                raise ConfigError(f"{key} weights {path}: no such file")
        self.download = download
        self.search_hub_cache = search_hub_cache

    def _hub_dir(self) -> Path:
        return Path(torch.hub.get_dir()) / "checkpoints"

    def find(self, key: str) -> tuple[Path | None, str | None]:
        spec = WEIGHTS[key]
        if key in self.paths:
            return self.paths[key], None
        folders = []
        if self.weights_dir is not None:
            folders.append(self.weights_dir)
        if self.search_hub_cache:
            folders.append(self._hub_dir())
        for folder in folders:
            for name in spec.filenames:
                candidate = folder / name
                if candidate.is_file():
                    return candidate, None
        if self.download:
            try:
                return download_to_hub_cache(spec.url), None
            except Exception as exc:  # offline, HTTP error, disk full
                return (
                    None,
                    f"download of {spec.url} failed ({type(exc).__name__}: {first_line(exc)})",
                )
        where = (
            f"--weights-dir {self.weights_dir}" if self.weights_dir else "no --weights-dir given"
        )
        return None, (
            f"{spec.description}: no {' / '.join(spec.filenames[:2])} found ({where}); "
            f"download it from {spec.url} or pass --download-weights"
        )

    def describe(self, key: str, path: Path) -> dict[str, object]:
        """What went into the report about one weights file (the variant that ran)."""
        return {
            "file": str(path),
            "bytes": path.stat().st_size,
            "sha256": sha256_file(path),
            "source_url": WEIGHTS[key].url,
            "description": WEIGHTS[key].description,
        }
