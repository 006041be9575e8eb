"""How a run uses the machine: the torch device, CPU threads and progress bars.

One rule each for the library and the CLI. torch and tqdm are imported inside the
functions, so importing this module (as every ``--help`` does) stays cheap.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    import torch
    from tqdm import tqdm

__all__ = [
    "COMPUTE_DTYPES",
    "progress_bar",
    "resolve_device",
    "resolve_dtype",
    "set_threads",
    "synchronize",
]


def resolve_device(name: str | torch.device | None) -> torch.device:
    """The device asked for (checked), else CUDA when available, else the CPU.

    A bad name or CUDA on a machine without it is a one-line :class:`ConfigError`.
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


#: The names a dtype may be given by (``--dtype``, ``dtype=``), lower case.
_DTYPE_NAMES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float64": "float64",
    "fp64": "float64",
    "double": "float64",
}
#: What models compute in; float64 only where a caller allows it (reference runs).
COMPUTE_DTYPES = ("float32", "float16", "bfloat16")


def resolve_dtype(
    dtype: torch.dtype | str | None,
    device: torch.device,
    *,
    default: torch.dtype,
    allowed: Sequence[str] = COMPUTE_DTYPES,
    float16_on_cpu: bool = False,
) -> torch.dtype:
    """The compute dtype asked for (a dtype or a name such as ``"bf16"``), else ``default``.

    One of ``allowed`` (names of torch dtypes). float16 on the CPU is refused unless
    ``float16_on_cpu``: most CPU kernels emulate it, so it is slower than float32 (the
    student refuses it; the teacher allows it, to reproduce a GPU run's numbers).
    """
    import torch

    if dtype is None:
        return default
    if isinstance(dtype, str):
        name = _DTYPE_NAMES.get(dtype.lower().removeprefix("torch."))
        if name is None:
            raise ConfigError(f"dtype {dtype!r} is not one of {', '.join(_DTYPE_NAMES)}")
        dtype = getattr(torch, name)
    if str(dtype).removeprefix("torch.") not in allowed:
        raise ConfigError(f"dtype {dtype} is not supported; use {', '.join(allowed)}")
    if dtype == torch.float16 and device.type == "cpu" and not float16_on_cpu:
        raise ConfigError("float16 is slow or unsupported on CPU; use bfloat16 (or float32)")
    return dtype


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously): a clock read before
    it stops while the GPU is still busy. A no-op on the CPU."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def set_threads(threads: int | None) -> None:
    """Set torch's intra-op CPU threads (None leaves torch's choice).

    On a shared or busy CPU one thread per process is often fastest: more threads
    wait on each other.
    """
    if threads is None:
        return
    import torch

    if threads < 1:
        raise ConfigError(f"--threads {threads}: must be at least 1")
    torch.set_num_threads(threads)


def progress_bar(
    iterable: Iterable[Any] | None = None, *, enabled: bool = True, **options: Any
) -> tqdm:
    """The project's one progress bar: tqdm on stderr (stdout stays for results).

    Rate and ETA included, redrawn at most twice a second, width following the
    terminal; ``enabled=False`` gives a silent bar with the same interface.
    ``options`` go to tqdm (``total``, ``desc``, ``unit``, ``leave``...).
    """
    from tqdm.auto import tqdm

    options.setdefault("file", sys.stderr)
    options.setdefault("dynamic_ncols", True)
    options.setdefault("mininterval", 0.5)
    options["disable"] = options.get("disable", False) or not enabled
    return tqdm(iterable, **options)
