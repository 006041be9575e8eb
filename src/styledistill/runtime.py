"""How a run uses the machine: the torch device, CPU threads and progress bars.

One rule each for the library and the CLI. torch and tqdm are imported inside the
functions, so importing this module (as every ``--help`` does) stays cheap.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    import torch
    from tqdm import tqdm

__all__ = ["progress_bar", "resolve_device", "set_threads"]


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
