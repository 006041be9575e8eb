"""Checks on output paths, run before any work starts, so a long job never fails at its end.

Every command that writes files calls :func:`check_output_folder` or
:func:`check_output_file` first: the path must be creatable (no file where a folder
should be), writable (probed with a real temp file, which also catches read-only
mounts and root-squashed shares) and, where the command knows roughly how much it
will write, on a disk with that much free space. :func:`check_not_an_input` is the
rule that outputs never replace or land among the inputs. All of them raise
:class:`OutputError`, which the CLI prints as one line (exit status 2). Nothing here
creates the output itself.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from .errors import StyledistillError
from .plumbing import human_bytes

__all__ = [
    "OutputError",
    "check_not_an_input",
    "check_output_file",
    "check_output_folder",
    "human_bytes",
    "inputs_among",
]

#: Free space kept in reserve on top of a command's own estimate (logs, temp files).
SPACE_MARGIN_BYTES = 16 * 2**20


class OutputError(StyledistillError):
    """An output path that cannot or must not be written; the message names it."""


def _nearest_existing(path: Path) -> Path:
    """``path`` itself or its closest ancestor that exists (what a mkdir -p would start from)."""
    current = path
    while not os.path.lexists(current):
        parent = current.parent
        if parent == current:
            break
        current = parent
    return current


def _check_creatable(folder: Path, flag: str, shown: Path) -> Path:
    """Raise unless ``folder`` exists as a folder or can be made with ``mkdir -p``."""
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        if existing == folder:
            raise OutputError(f"{flag} {shown}: {existing} is a file, not a folder")
        raise OutputError(f"{flag} {shown}: cannot create it: {existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".styledistill-write-check.", dir=existing)
    except OSError as exc:
        reason = exc.strerror or os.strerror(exc.errno or errno.EACCES)
        raise OutputError(f"{flag} {shown}: cannot write in {existing} ({reason})") from None
    os.close(fd)
    os.unlink(probe)
    return existing


def _check_space(existing: Path, flag: str, shown: Path, need_bytes: int) -> None:
    if need_bytes <= 0:
        return
    try:
        free = shutil.disk_usage(existing).free
    except OSError:
        return  # not knowable here (some network filesystems): the writers still fail cleanly
    if free < need_bytes + SPACE_MARGIN_BYTES:
        raise OutputError(
            f"{flag} {shown}: needs about {human_bytes(need_bytes)} plus a "
            f"{human_bytes(SPACE_MARGIN_BYTES)} safety margin (logs, temp files), but "
            f"{existing} has only {human_bytes(free)} free"
        )


def check_output_folder(path: str | os.PathLike, flag: str, *, need_bytes: int = 0) -> Path:
    """Check that folder ``path`` can be created (or reused) and written; returns it.

    ``need_bytes``: what the command expects to write there (0: unknown, not checked).
    """
    folder = Path(path).expanduser()
    if os.path.lexists(folder) and not folder.is_dir():
        raise OutputError(f"{flag} {folder}: exists and is a file, not a folder")
    existing = _check_creatable(folder, flag, folder)
    _check_space(existing, flag, folder, need_bytes)
    return folder


def check_output_file(
    path: str | os.PathLike, flag: str, *, need_bytes: int = 0, overwrite: bool = True
) -> Path:
    """Check that file ``path`` can be written (its folder created); returns it.

    With ``overwrite=False`` an existing file is refused (the user passes --overwrite).
    """
    target = Path(path).expanduser()
    if target.is_dir():
        raise OutputError(f"{flag} {target}: is a folder, not a file")
    if os.path.lexists(target) and not overwrite:
        raise OutputError(f"{flag} {target}: already exists; pass --overwrite to replace it")
    existing = _check_creatable(target.parent, flag, target)
    _check_space(existing, flag, target, need_bytes)
    return target


def _resolved(path: Path) -> Path:
    try:
        return path.expanduser().resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare as given
        return path.expanduser().absolute()


def check_not_an_input(
    outputs: Iterable[str | os.PathLike],
    inputs: Mapping[str, str | os.PathLike],
    flag: str = "--out",
    *,
    folder_output: bool = False,
) -> None:
    """Refuse outputs that would replace an input file or be written among the inputs.

    ``inputs`` maps each input flag (``--content``) to its file or folder.
    ``folder_output``: the first output is a folder the command fills; it must not be
    an input folder or lie inside one (its files would be read as inputs next time).
    """
    outputs = [Path(p) for p in outputs]
    resolved_outputs = [_resolved(p) for p in outputs]
    for input_flag, raw in inputs.items():
        source = Path(raw)
        resolved = _resolved(source)
        if source.is_dir():
            if folder_output and resolved_outputs:
                out = resolved_outputs[0]
                if out == resolved or resolved in out.parents:
                    where = "is" if out == resolved else "is inside"
                    raise OutputError(
                        f"{flag} {outputs[0]} {where} {input_flag} {source}: outputs would be "
                        "written among the inputs; choose a folder outside it"
                    )
            continue
        for shown, out in zip(outputs, resolved_outputs):
            same = out == resolved
            if not same and out.exists() and source.exists():
                try:
                    same = os.path.samefile(out, source)
                except OSError:
                    same = False
            if same:
                raise OutputError(
                    f"{flag} {shown} is the {input_flag} file: writing it would destroy the "
                    "input; choose another output"
                )


def inputs_among(outputs: Mapping[Path, Path], input_files: Iterable[Path]) -> list[Path]:
    """Outputs (values of ``outputs``) that resolve to one of ``input_files``."""
    inputs = {_resolved(p) for p in input_files}
    return [target for target in outputs.values() if _resolved(target) in inputs]
