"""argparse helpers shared by sub-commands; the rules behind them live in the library
(:mod:`styledistill.runtime`: ``resolve_device``, ``set_threads``, ``progress_bar``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = [
    "add_device_argument",
    "add_key_value_argument",
    "add_threads_argument",
    "key_value_option",
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


def add_key_value_argument(parser: Any, flag: str, help: str) -> None:
    """A repeatable ``--flag KEY=VALUE`` (collected as a list of ``(key, value)`` pairs)."""
    parser.add_argument(
        flag, type=key_value_option, action="append", default=[], metavar="KEY=VALUE", help=help
    )


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
