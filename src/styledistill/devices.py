"""Choosing the torch device: one rule for the CLI and the library."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["resolve_device"]


def resolve_device(name: str | torch.device | None) -> torch.device:
    """The device asked for (checked), else CUDA when available, else the CPU.

    A bad name or CUDA on a machine without it is a one-line :class:`ConfigError`.
    torch is imported here, not at module import, so ``--help`` stays fast.
    """
    import torch

    if isinstance(name, torch.device):
        return name
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"--device {name!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine")
    return device
