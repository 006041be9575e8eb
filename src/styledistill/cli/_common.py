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
    "add_max_pixels_argument",
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


def check_finite_arguments(args: argparse.Namespace) -> None:
    """Refuse NaN and infinity in any parsed flag: the one rule for every sub-command.

    ``float("nan")`` parses, and NaN passes every range check (comparisons are False), so
    a ``--noise-sigma nan`` would reach a teacher. Lists (``--scales``) and JSON values
    (``--teacher-option KEY=VALUE``) are searched too.
    """
    from ..errors import ConfigError
    from ..values import first_non_finite

    for dest, value in vars(args).items():
        if dest.startswith("_"):
            continue
        found = first_non_finite(value)
        if found is None:
            continue
        shown = str(found)
        for item in value if isinstance(value, list) else []:
            if isinstance(item, tuple) and len(item) == 2 and first_non_finite(item) is not None:
                shown = f"{item[0]}={json.dumps(item[1])}"  # a KEY=VALUE flag
                break
        raise ConfigError(
            f"--{dest.replace('_', '-')} {shown}: must be a finite number (NaN and "
            "infinity are not accepted)"
        )


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_max_pixels_argument(parser: Any) -> None:
    """``--max-pixels N``: the pixel budget (styledistill.budget) set by hand."""
    parser.add_argument(
        "--max-pixels",
        type=positive_int,
        default=None,
        metavar="N",
        help="largest working image to attempt, in pixels (batch x height x width); default: "
        "what the free memory holds, estimated per model (work that does not fit is refused "
        "before it starts)",
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


def add_student_argument(parser: argparse.ArgumentParser, *, onnx: bool = False) -> None:
    """The student to run: a positional STUDENT or ``--student`` (a folder, a training run,
    a pretrained name, or with ``onnx`` an exported .onnx file); default: the pretrained
    student shipped with the package."""
    from ..hub import DEFAULT_STUDENT

    what = "student folder, training run, pretrained name" + (", or exported .onnx" if onnx else "")
    parser.add_argument(
        "checkpoint",
        nargs="?",
        metavar="STUDENT",
        help=f"{what} (default: the pretrained {DEFAULT_STUDENT})",
    )
    parser.add_argument("--student", metavar="STUDENT", help="the same, as a flag")


def student_source(args: argparse.Namespace) -> str:
    """The STUDENT the command runs (see :func:`add_student_argument`)."""
    from ..errors import ConfigError
    from ..hub import DEFAULT_STUDENT

    if args.checkpoint and args.student and args.checkpoint != args.student:
        raise ConfigError(
            f"two students given ({args.checkpoint} and --student {args.student}); give one"
        )
    return args.checkpoint or args.student or DEFAULT_STUDENT
