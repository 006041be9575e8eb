"""Where students come from: a folder, a training run, or a pretrained student shipped inside
the package, by name. Standard library only, so ``--help`` can name them cheaply.

The pretrained students live in ``styledistill/pretrained_students/NAME/`` (config.json,
model.safetensors, a model card README.md); ``scripts/train_pretrained.py`` makes them.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import CheckpointError

__all__ = ["DEFAULT_STUDENT", "PRETRAINED_DIR", "list_pretrained", "resolve_student_folder"]

#: Pretrained students shipped with the package, one folder per name.
PRETRAINED_DIR = Path(__file__).parent / "pretrained_students"
#: The student commands use when none is named.
DEFAULT_STUDENT = "styleid-small"
_CONFIG = "config.json"


def list_pretrained() -> list[str]:
    """Names of the pretrained students shipped with the package."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / _CONFIG).is_file())


def resolve_student_folder(source: str | os.PathLike) -> Path:
    """The student folder meant by ``source``: a folder, a run holding ``student/``, or a
    pretrained name. A path that exists wins over a name; anything else is one line."""
    path = Path(source).expanduser()
    if not path.exists() and isinstance(source, str) and source in list_pretrained():
        return PRETRAINED_DIR / source
    if not path.exists():
        names = ", ".join(list_pretrained()) or "none installed"
        raise CheckpointError(
            f"{source}: no such checkpoint folder, and not a pretrained student ({names})"
        )
    if path.is_file():
        raise CheckpointError(f"{path}: is a file; expected a student folder with {_CONFIG}")
    if not (path / _CONFIG).exists() and (path / "student" / _CONFIG).exists():
        path = path / "student"
    return path
