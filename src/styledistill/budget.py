"""The pixel budget: work whose tensors cannot fit in memory is refused before it starts.

Every entry point that allocates by the pixel (``Stylizer``, ``OnnxStylizer``, the
teachers, ``train``, ``evaluate``, ``export``) estimates the memory its working size
needs from the bytes per working pixel measured below and calls :func:`check_memory`
before allocating. The estimate is compared with the memory free on the device (the
host's available memory, bounded by a cgroup limit; a GPU's free memory), or, when the
caller passes ``max_pixels``, the working pixels are compared with that instead. A
refusal is one :class:`PixelBudgetError` line naming the limit and ``max_pixels`` (the
CLI shows its ``--max-pixels`` flag).

Torch-free: torch is imported only to ask a CUDA device for its free memory.

The constants are peak resident memory per working pixel (batch x height x width)
measured by ``bench/pixel_budget.py`` on the CPU in float32 (bench/RESULTS.md), rounded
up. A student's full-resolution tensors carry its image decoder's last width, so its
figure is a base plus a term per channel of that width (sttr-small: 8, sttr-paper: 128).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .plumbing import human_bytes

__all__ = [
    "PixelBudgetError",
    "attention_bytes",
    "available_memory",
    "check_memory",
    "long_side_shape",
    "student_bytes_per_pixel",
    "training_bytes_per_pixel",
    "working_shape",
]

#: Student inference (PyTorch or onnxruntime), per working pixel: a base (backbones,
#: texture head, histograms) plus two float32 tensors of the decoder's last width at full
#: resolution. Measured: sttr-small 410, sttr-paper 1372 B/px.
STUDENT_BASE_BYTES_PER_PIXEL = 384
STUDENT_BYTES_PER_DECODER_CHANNEL = 8
#: One training step (forward, backward, AdamW, VGG19 loss network), per pixel of the
#: batch. Measured: sttr-small 5083, sttr-paper 28787 B/px.
TRAIN_BASE_BYTES_PER_PIXEL = 3584
TRAIN_BYTES_PER_DECODER_CHANNEL = 200
#: onnxruntime computes attention as matrices (PyTorch's SDPA does not): float32 copies
#: of each ``queries x keys`` matrix per head held at once. Fitted to sttr-paper at
#: 512-768 px (2.7 to 11.1 GB peak) and sttr-small at 1024-1536 px.
ONNX_ATTENTION_COPIES = 4
#: The texture teacher, per output pixel (pairs run one after another). Measured 2052.
TEXTURE_BYTES_PER_PIXEL = 2560
#: The gatys teacher, per output pixel of each pair in a batch: MobileNetV2's activations
#: to stride 16 kept for the backward pass, the content's and the Gram targets.
GATYS_BYTES_PER_PIXEL = 4096
#: StyleID, per pixel of each pair in a batch, in float16: the injected layers' Q/K/V
#: kept for every sampling step (a style's cache is ~1.2 GB at 512 px) for style and
#: content, plus the UNet's activations. An estimate (no SD weights on the CPU machine);
#: float32 needs twice as much.
STYLEID_BYTES_PER_PIXEL = 12 * 1024
#: A decoded float32 RGB image held in memory, plus its 8-bit source while decoding.
IMAGE_BYTES_PER_PIXEL = 16
#: When the free memory cannot be read (no /proc, no psutil): assume this much.
DEFAULT_MEMORY_BYTES = 8 * 2**30


class PixelBudgetError(ConfigError):
    """Work too large for the memory (or for ``max_pixels``); one line, before allocating."""


def student_bytes_per_pixel(decoder_width: int) -> int:
    """Inference bytes per working pixel of a student whose image decoder ends at that width."""
    return STUDENT_BASE_BYTES_PER_PIXEL + STUDENT_BYTES_PER_DECODER_CHANNEL * int(decoder_width)


def training_bytes_per_pixel(decoder_width: int) -> int:
    """Training bytes per pixel of a batch for a student with that last decoder width."""
    return TRAIN_BASE_BYTES_PER_PIXEL + TRAIN_BYTES_PER_DECODER_CHANNEL * int(decoder_width)


def attention_bytes(batch: int, heads: int, queries: int, keys: int) -> int:
    """Memory of attention computed as matrices (onnxruntime): float32 copies held at once."""
    return ONNX_ATTENTION_COPIES * 4 * int(batch) * int(heads) * int(queries) * int(keys)


def long_side_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """``(height, width)`` resized so the long side is ``size``, keeping the aspect ratio."""
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def working_shape(height: int, width: int, size: int | None, multiple: int) -> tuple[int, int]:
    """The shape a model works at: long side to ``size`` (None: kept), padded to ``multiple``."""
    if size:
        height, width = long_side_shape(height, width, size)
    return height + (-height) % multiple, width + (-width) % multiple


# --------------------------------------------------------------------------- free memory


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_room() -> int | None:
    """Memory left under this process's cgroup limit (v2, else v1); None when unlimited."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        limit = _read_int(Path(limit_file))
        if limit is None or limit >= 2**60:  # "max", or v1's "no limit" sentinel
            continue
        usage = _read_int(Path(usage_file)) or 0
        return max(0, limit - usage)
    return None


def _host_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil  # type: ignore[import-not-found]

        return int(psutil.virtual_memory().available)
    except Exception:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def available_memory(device: Any = None) -> tuple[int, str]:
    """``(bytes, where)``: memory free for new tensors on ``device`` (None: the host).

    The host's figure is its available memory, lowered to the room left under a cgroup
    (container) limit. A CUDA device's is its free memory plus what PyTorch has cached
    but not in use.
    """
    name = str(device) if device is not None else "cpu"
    if name.startswith("cuda"):
        import torch

        index = torch.device(name).index
        index = torch.cuda.current_device() if index is None else index
        free, _total = torch.cuda.mem_get_info(index)
        cached = torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index)
        return int(free + max(0, cached)), f"on cuda:{index}"
    found = [v for v in (_host_available(), _cgroup_room()) if v is not None]
    if not found:
        return DEFAULT_MEMORY_BYTES, "(assumed: free memory unknown)"
    return min(found), "in RAM"


# --------------------------------------------------------------------------- the check


def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(int(v)) for v in shape)


def check_memory(
    what: str,
    shape: Sequence[int],
    need_bytes: int,
    *,
    max_pixels: int | None = None,
    device: Any = None,
) -> None:
    """Refuse ``what`` at working ``shape`` (``[batch,] height, width``) unless it fits.

    ``need_bytes``: the caller's estimate for that shape. With ``max_pixels`` the
    working pixels (the product of ``shape``) are compared with it and the memory is not
    asked; otherwise ``need_bytes`` is compared with :func:`available_memory`.
    """
    pixels = 1
    for value in shape:
        pixels *= int(value)
    shown = f"{what} at {_shape_text(shape)} ({pixels:,} working pixels)"
    if max_pixels is not None:
        if max_pixels < 1:
            raise ConfigError(f"max_pixels {max_pixels}: must be a positive number of pixels")
        if pixels > max_pixels:
            raise PixelBudgetError(
                f"{shown} is over the limit of max_pixels={max_pixels}; use a smaller size, or "
                f"pass max_pixels={pixels} to allow it"
            )
        return
    free, where = available_memory(device)
    if need_bytes > free:
        raise PixelBudgetError(
            f"{shown} needs about {human_bytes(need_bytes)} of memory, more than the "
            f"{human_bytes(free)} free {where}; use a smaller size, or pass "
            f"max_pixels={pixels} to try anyway"
        )
