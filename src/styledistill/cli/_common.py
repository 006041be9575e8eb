"""Small helpers shared by sub-commands (device choice, progress bars)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..devices import resolve_device

__all__ = [
    "add_device_argument",
    "add_threads_argument",
    "apply_threads",
    "key_value_option",
    "progress",
    "resolve_device",
]


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default=None,
        help="torch device, e.g. cpu, cuda, cuda:1 (default: cuda when available, else cpu)",
    )


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="torch CPU threads (default: torch's choice; on a shared or busy CPU, 1 per "
        "process is often fastest, as more threads wait on each other)",
    )


def apply_threads(threads: int | None) -> None:
    """Set torch's intra-op CPU threads from ``--threads`` (None: leave torch's choice)."""
    if threads is None:
        return
    import torch

    from ..errors import ConfigError

    if threads < 1:
        raise ConfigError(f"--threads {threads}: must be at least 1")
    torch.set_num_threads(threads)


def progress(iterable=None, **kwargs):
    """A tqdm progress bar on stderr (rate and ETA included)."""
    from tqdm.auto import tqdm

    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("mininterval", 0.5)
    return tqdm(iterable, **kwargs)


def key_value_option(text: str) -> tuple[str, Any]:
    """argparse type for ``KEY=VALUE`` flags: the value is JSON when it parses, else a string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    return key.strip().replace("-", "_"), parsed
