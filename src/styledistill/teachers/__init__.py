"""Teachers: models that turn (content, style) into a stylized image for the dataset.

``StyleIDTeacher`` (diffusion, needs Stable Diffusion weights) and ``TextureTeacher``
(weight-free texture synthesis, the offline default). Build one by name with
:func:`create_teacher`; :func:`list_teachers` gives the names. Imports are lazy so the
texture teacher works without diffusers installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..plumbing import lazy_attributes
from .registry import (
    DEFAULT_STYLEID_MODEL,
    TeacherSpec,
    check_teacher_model,
    create_teacher,
    get_teacher_spec,
    list_teachers,
)

if TYPE_CHECKING:  # pragma: no cover
    from .base import Teacher
    from .styleid import StyleFeatures, StyleIDTeacher
    from .texture import TextureTeacher

__all__ = [
    "DEFAULT_STYLEID_MODEL",
    "StyleFeatures",
    "StyleIDTeacher",
    "Teacher",
    "TeacherSpec",
    "TextureTeacher",
    "check_teacher_model",
    "create_teacher",
    "get_teacher_class",
    "get_teacher_spec",
    "list_teachers",
]

# torch and diffusers load on first use, so the CLI can list teachers cheaply.
_LAZY = {
    "Teacher": ".base",
    "StyleIDTeacher": ".styleid",
    "StyleFeatures": ".styleid",
    "TextureTeacher": ".texture",
}

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())


def get_teacher_class(name: str) -> type:
    """Teacher class by registry name (see :func:`list_teachers`)."""
    return get_teacher_spec(name).teacher_class()
