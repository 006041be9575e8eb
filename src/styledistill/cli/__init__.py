"""The ``styledistill`` command: one sub-command per module in this package.

Each sub-command module defines ``HELP`` (one line), ``EXAMPLES`` (shown in
``--help``), ``add_arguments(parser)`` and ``run(args) -> int``. Modules import
torch and friends inside ``run`` so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import re
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import StyledistillError
from ._common import check_finite_arguments

#: Sub-commands in the order ``--help`` lists them (the flow in docs/architecture.md).
COMMANDS: dict[str, str] = {
    "demo": "styledistill.cli.demo",
    "samples": "styledistill.cli.samples",
    "teach": "styledistill.cli.teach",
    "dataset": "styledistill.cli.dataset",
    "train": "styledistill.cli.train",
    "stylize": "styledistill.cli.stylize",
    "evaluate": "styledistill.cli.evaluate",
    "bench": "styledistill.cli.bench",
    "export": "styledistill.cli.export",
    "serve": "styledistill.cli.serve",
}

EXAMPLES = """\
examples:
  styledistill demo --quick                 # offline end to end: teach, train, evaluate
  styledistill samples --out samples/        # sample photos + generated styles
  styledistill teach --teacher texture --contents samples/contents \\
      --styles samples/styles --out data/texture
  styledistill train --data data/texture --out runs/small
  styledistill stylize runs/small/student --content photo.jpg --style art.jpg --out out.png

Run 'styledistill COMMAND --help' for the options and examples of each command.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the examples' layout; show defaults only where there is one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, argparse.SUPPRESS) or "%(default)" in (
            action.help or ""
        ):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="styledistill",
        description="Distil diffusion style transfer (StyleID) into a real-time transformer (STTR).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"styledistill {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # not built yet
            raise
        command = sub.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            epilog=getattr(module, "EXAMPLES", None),
            formatter_class=_Formatter,
        )
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[^./\\]+\.tmp$")


def final_path(filename: str | bytes | os.PathLike) -> str:
    """The file the user asked for, given a temp name ``.NAME.XXXX.tmp`` of an atomic writer."""
    path = os.fsdecode(filename)
    folder, base = os.path.split(path)
    match = _TEMP_NAME.match(base)
    return os.path.join(folder, match["name"]) if match else path


def cli_message(exc: BaseException, args: argparse.Namespace) -> str:
    """The library's message in the command's words: flags instead of Python arguments."""
    message = str(exc)
    if hasattr(args, "max_pixels"):  # the pixel budget (styledistill.budget) has a flag here
        message = re.sub(r"\bmax_pixels=(\d+)", r"--max-pixels \1", message)
    else:
        message = re.sub(r", or pass max_pixels=\d+ to [a-z ]+$", "", message)
    if hasattr(args, "size"):
        message = message.replace("use a smaller size", "use a smaller --size")
    python_hint = "pass allow_pickle=True"
    if python_hint in message:
        if hasattr(args, "allow_pickle"):
            message = message.replace(python_hint, "pass --allow-pickle")
        else:  # this command has no such flag: drop the Python-only advice
            message = re.sub(r"\s*or pass allow_pickle=True( \([^)]*\))?", "", message)
    return message


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        check_finite_arguments(args)
        return int(args._run(args) or 0)
    except StyledistillError as exc:
        print(f"styledistill {args.command}: error: {cli_message(exc, args)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error. Point stdout at devnull so
        # the interpreter's final flush does not fail again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass  # stdout is not a real file (captured): nothing will flush to the pipe
        return 0
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM):
            where = f" ({final_path(exc.filename)})" if exc.filename else ""
            print(f"styledistill {args.command}: error: {exc.strerror}{where}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print(f"styledistill {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
