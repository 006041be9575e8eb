"""Torch-free plumbing every layer may stand on: atomic writes, file modes, one-line errors.

It imports only the standard library (and :mod:`styledistill.errors`), so the torch
library, the numpy-only ONNX runner and the CLI share one copy of each rule
(docs/architecture.md, "Invariants").
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "UMASK",
    "atomic_path",
    "first_line",
    "human_bytes",
    "jsonable",
    "lazy_attributes",
    "make_shareable",
    "one_line",
    "path_problem",
    "sha256_file",
    "shareable_mode",
    "weights_error_reason",
]


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: The process umask, read once at import: os.umask() is process-wide, so probing it
#: later would race with other threads.
UMASK = _read_umask()


def shareable_mode(*, directory: bool = False) -> int:
    """The mode ``open()`` (0666) or ``mkdir()`` (0777) would give, minus the umask."""
    return (0o777 if directory else 0o666) & ~UMASK


def make_shareable(path: str | os.PathLike, *, directory: bool = False) -> None:
    """Undo the private mode of ``mkstemp`` (0600) / ``mkdtemp`` (0700).

    Atomic writers create their temp file privately; without this the final file
    (dataset.json, an ONNX model, a video, a checkpoint folder) is unreadable to others.
    """
    os.chmod(path, shareable_mode(directory=directory))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """A temp file beside ``path`` to write to; renamed onto ``path`` when the block ends.

    The one atomic-write mechanism of the project: a crash, a full disk or an exception
    never leaves a half-written file under ``path`` (the temp file is removed), and the
    final file gets ``open()``'s mode, not mkstemp's private 0600. ``suffix`` matters to
    writers that pick a format from it (video containers, ONNX tools).
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        make_shareable(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def first_line(exc: BaseException) -> str:
    """An exception as one line for a user-facing message: its first non-empty line.

    Library errors (safetensors, onnxruntime, PIL) often carry multi-line dumps; the
    CLI prints one line per error. Falls back to the exception's type name.
    """
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def one_line(exc: BaseException, *, limit: int = 300) -> str:
    """The whole message folded onto one line, cut at ``limit`` characters.

    For errors whose first line alone says nothing (Hugging Face loaders put the
    reason after a generic header); :func:`first_line` is the default.
    """
    return " ".join(str(exc).split())[:limit] or type(exc).__name__


def weights_error_reason(exc: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` failed, in words a user can act on.

    torch's own text is a paragraph advising ``weights_only=False`` (running the pickle's
    code), which no command offers; a text or image file fails with a bare ``KeyError``
    such as ``101``. Both become a short reason.
    """
    text = str(exc)
    if "Unsupported global" in text:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        what = f" ({found.group(1)})" if found else ""
        return f"it holds Python objects besides tensors{what}, which are never unpickled"
    if (
        "Weights only load failed" in text
        or isinstance(exc, (KeyError, EOFError))
        or (type(exc).__name__ in ("UnpicklingError", "BadZipFile"))
    ):
        return "not a PyTorch weights file, or a damaged one"
    return first_line(exc)


def path_problem(path: str | os.PathLike, want: str, what: str | None = None) -> str | None:
    """What keeps ``path`` from being a ``want`` ("file" or "folder"), or None if it is one.

    The one wording of path errors, so a message never calls an existing path missing:
    "no such WHAT" for a missing path (or a broken link), "is a folder, not a WHAT" and
    "is a file, not a WHAT" for the wrong kind. ``what`` names the thing ("video file",
    "dataset folder"; default: "file or folder" when missing, else ``want``).
    """
    path = Path(path)
    if not path.exists():
        return f"no such {what or 'file or folder'}"
    if want == "file" and path.is_dir():
        return f"is a folder, not a {what or 'file'}"
    if want == "folder" and not path.is_dir():
        return f"is a file, not a {what or 'folder'}"
    return None


def jsonable(value: Any) -> Any:
    """A copy of ``value`` that ``json.dumps(..., allow_nan=False)`` writes as standard JSON.

    NaN policy: NaN and +/-infinity become ``None`` (JSON ``null``). Python's ``NaN``
    literal is not JSON (browsers, ``jq`` and strict parsers refuse the file), and ``null``
    reads as "no value", which is what a metric that could not be computed has; values
    that must be finite are refused before they get here (``values.first_non_finite``).

    Mappings become dicts with ``str`` keys and sequences lists; one-element numpy and
    torch values become Python numbers (duck-typed through ``.item()``, so no import);
    anything else (paths, devices, dtypes) becomes its ``str``.
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int)) or value is None:
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return jsonable(item())
        except (ValueError, RuntimeError, TypeError):  # more than one element
            pass
    return str(value)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (weights files are gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def human_bytes(count: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def lazy_attributes(
    package: str, names: Mapping[str, str], namespace: dict[str, object]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` (PEP 562) for a package whose heavy names load late.

    ``names`` maps each name to the module of ``package`` that defines it (``".writer"``);
    the first access imports that module and stores the value in ``namespace`` (the
    package's ``globals()``), so later lookups skip ``__getattr__``. This keeps ``import
    styledistill.<package>`` free of torch / diffusers where a caller needs only the light
    part (the CLI's ``--help``, reading a manifest).
    """

    def __getattr__(name: str) -> object:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *names})

    return __getattr__, __dir__
