"""Teachers: models that turn (content, style) into a stylized image for the dataset.

``StyleIDTeacher`` (diffusion, needs Stable Diffusion weights) and ``TextureTeacher``
(weight-free texture synthesis, the offline default). Imports are lazy so the
texture teacher works without diffusers installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Teacher

if TYPE_CHECKING:  # pragma: no cover
    from .styleid import StyleFeatures, StyleIDTeacher
    from .texture import TextureTeacher

__all__ = ["StyleFeatures", "StyleIDTeacher", "Teacher", "TextureTeacher", "get_teacher_class"]

_LAZY = {
    "StyleIDTeacher": ".styleid",
    "StyleFeatures": ".styleid",
    "TextureTeacher": ".texture",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name], __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_teacher_class(name: str) -> type:
    """Teacher class by CLI name: ``styleid`` or ``texture``."""
    table = {"styleid": "StyleIDTeacher", "texture": "TextureTeacher"}
    if name not in table:
        from ..errors import ConfigError

        raise ConfigError(f"unknown teacher {name!r}; choose from {', '.join(table)}")
    return __getattr__(table[name])
