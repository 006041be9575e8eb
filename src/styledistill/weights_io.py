"""The one reader of weights files: safetensors, or a pickle only when the caller allows it.

A pickle can run code when it is loaded, so it is refused unless ``allow_pickle`` is
true, and even then read with ``torch.load(weights_only=True)`` (tensors and plain
containers only). Whatever the format, a file that is missing, damaged, not a state
dict of tensors or holding NaN/infinity is one line of :class:`CheckpointError` naming
the file (and the tensor), never a traceback or a model that silently outputs black.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from .errors import CheckpointError
from .plumbing import first_line, weights_error_reason

__all__ = ["read_state_dict"]

#: Keys under which training scripts nest the state dict of a pickled checkpoint.
_WRAPPERS = ("state_dict", "model")


def read_state_dict(
    path: str | os.PathLike, *, allow_pickle: bool = False
) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file, or of a pickle when ``allow_pickle``.

    A pickle's ``{"state_dict": ...}`` / ``{"model": ...}`` wrapper and DataParallel's
    ``module.`` prefixes are removed, so torchvision, Lightning and DataParallel files
    read alike. Everything is loaded on the CPU.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except Exception as exc:  # SafetensorError, OSError, a truncated header...
            raise CheckpointError(
                f"{path}: corrupt or unreadable safetensors file ({first_line(exc)})"
            ) from None
    else:
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
        for key in _WRAPPERS:
            if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
                state = state[key]
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    return _finite(path, {str(k).removeprefix("module."): v for k, v in state.items()})


def _finite(path: Path, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state``, unless a floating-point tensor holds NaN or infinity (then one line)."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"{path}: tensor {key} holds NaN or infinite values; the weights are damaged "
                "(a diverged training run or a corrupt copy)"
            )
    return state
