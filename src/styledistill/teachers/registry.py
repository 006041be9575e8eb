"""The teacher registry: one place that knows every teacher's name and how to build it.

As timm's ``create_model``: the CLI offers :func:`list_teachers`, and the dataset
writer, the benchmark and the evaluation build with :func:`create_teacher`. Nothing
here imports torch or diffusers, so ``--help`` can list the names cheaply.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..budget import (
    GATYS_BYTES_PER_PIXEL,
    STYLEID_BYTES_PER_PIXEL,
    TEXTURE_BYTES_PER_PIXEL,
    check_memory,
)
from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .base import Teacher

__all__ = [
    "DEFAULT_STYLEID_MODEL",
    "TeacherSpec",
    "check_teacher_memory",
    "check_teacher_model",
    "create_teacher",
    "get_teacher_spec",
    "list_teachers",
]

#: The Stable Diffusion checkpoint of the StyleID paper: the default ``model``.
DEFAULT_STYLEID_MODEL = "CompVis/stable-diffusion-v1-4"


@dataclass(frozen=True)
class TeacherSpec:
    """What callers need to know about a teacher before building it.

    ``needs_weights``: built by ``from_pretrained(model, device=...)`` and runs on that
    device; otherwise built from its settings alone and runs on the CPU.
    ``bytes_per_pixel``: memory per output pixel of a pair (:mod:`styledistill.budget`);
    ``batched``: the pairs of a batch are in memory together (else one after another).
    """

    name: str
    class_path: str
    summary: str
    default_size: int
    needs_weights: bool
    default_model: str | None = None
    bytes_per_pixel: int = 0
    batched: bool = False

    def teacher_class(self) -> type:
        module_name, _, class_name = self.class_path.partition(":")
        return getattr(importlib.import_module(module_name), class_name)


_REGISTRY: dict[str, TeacherSpec] = {
    spec.name: spec
    for spec in (
        TeacherSpec(
            name="styleid",
            class_path="styledistill.teachers.styleid:StyleIDTeacher",
            summary="StyleID (CVPR 2024) on Stable Diffusion 1.x/2.x; needs weights and a GPU",
            default_size=512,
            needs_weights=True,
            default_model=DEFAULT_STYLEID_MODEL,
            bytes_per_pixel=STYLEID_BYTES_PER_PIXEL,
            batched=True,
        ),
        TeacherSpec(
            name="gatys",
            class_path="styledistill.teachers.gatys:GatysTeacher",
            summary="neural style transfer by optimisation (Gatys et al. 2016) on ImageNet "
            "MobileNetV2; StyleID-like, CPU, offline",
            default_size=256,
            needs_weights=False,
            bytes_per_pixel=GATYS_BYTES_PER_PIXEL,
            batched=True,
        ),
        TeacherSpec(
            name="texture",
            class_path="styledistill.teachers.texture:TextureTeacher",
            summary="texture synthesis (Elad & Milanfar 2017); weight-free, CPU, offline",
            default_size=256,
            needs_weights=False,
            bytes_per_pixel=TEXTURE_BYTES_PER_PIXEL,
        ),
    )
}


def list_teachers() -> list[str]:
    """Names :func:`create_teacher` accepts, sorted (the CLI's ``--teacher`` choices)."""
    return sorted(_REGISTRY)


def get_teacher_spec(name: str) -> TeacherSpec:
    """The registry entry of ``name``; an unknown name is a one-line :class:`ConfigError`."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown teacher {name!r}; choose from {', '.join(list_teachers())}"
        ) from None


def check_teacher_model(name: str | None, model: str | None) -> None:
    """Refuse ``model`` without a teacher that loads weights (``name`` None: no teacher).

    Commands call it before any work, so a stray ``--model`` is not noticed an hour later.
    """
    if model is None or (name is not None and get_teacher_spec(name).needs_weights):
        return
    with_weights = [n for n in list_teachers() if _REGISTRY[n].needs_weights]
    raise ConfigError(f"--model applies to --teacher {' or '.join(with_weights)} only")


def check_teacher_memory(
    name: str,
    size: int,
    batch_size: int = 1,
    *,
    max_pixels: int | None = None,
    device: Any = None,
) -> None:
    """Refuse, before any weights load, a teacher size whose pairs cannot fit in memory.

    The teachers call it when they are built; commands call it first (``teach``,
    ``evaluate``), so a folder is never made for work that cannot run.
    """
    spec = get_teacher_spec(name)
    batch = max(1, int(batch_size)) if spec.batched else 1
    shape = (batch, size, size) if batch > 1 else (size, size)
    need = spec.bytes_per_pixel * batch * size * size
    check_memory(f"the {name} teacher", shape, need, max_pixels=max_pixels, device=device)


def create_teacher(
    name: str,
    *,
    model: str | None = None,
    device: torch.device | str | None = None,
    **options: Any,
) -> Teacher:
    """Build a teacher by name.

    ``model`` (a hub id, diffusers folder or single file; default
    :data:`DEFAULT_STYLEID_MODEL`) and ``device`` apply to teachers that load weights
    (weight-free ones run on the CPU); ``model`` given to a weight-free teacher is
    refused rather than ignored.
    ``options`` are the teacher's own settings (``size``, ``seed``, ``num_steps``...,
    and ``from_pretrained`` arguments such as ``dtype`` and ``revision``); an unknown
    one is a :class:`ConfigError` naming the teacher.

    >>> teacher = create_teacher("texture", size=128, seed=0)
    """
    check_teacher_model(name, model)
    spec = get_teacher_spec(name)
    cls = spec.teacher_class()
    try:
        if not spec.needs_weights:
            if device is not None and "device" in inspect.signature(cls).parameters:
                options = {"device": device, **options}
            return cls(**options)
        return cls.from_pretrained(model or spec.default_model, device=device, **options)
    except TypeError as exc:
        raise ConfigError(f"{name} teacher: {exc}") from None
